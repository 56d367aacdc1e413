"""Embeddings and Models wire format: deterministic unit vectors, float or base64, model lists."""

from __future__ import annotations

import base64
import hashlib
import math
import sys
from array import array
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from lockgate.providers.simulator.content import estimate_tokens
from lockgate.providers.simulator.errors import SimulatedError, invalid_request, model_not_found
from lockgate.providers.simulator.openai_wire import require_model, type_name
from lockgate.providers.simulator.options import SimulatorOptions

DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")
MODEL_CREATED = 1_700_000_000
MAX_INPUTS = 2048
_BIG_ENDIAN = sys.byteorder == "big"


@dataclass(slots=True)
class EmbeddingPlan:
    model: str
    inputs: list[bytes]
    prompt_tokens: int
    dimensions: int
    base64: bool


@lru_cache(maxsize=256)
def vector(key: bytes, dimensions: int) -> tuple[list[float], str]:
    """A unit vector hashed from ``key``: float32 values and the same bytes as base64."""
    raw = array("h")
    raw.frombytes(hashlib.shake_256(key).digest(2 * dimensions))
    if _BIG_ENDIAN:
        raw.byteswap()
    norm = math.hypot(*raw) or 1.0
    floats = array("f", [x / norm for x in raw])
    values = floats.tolist()
    if _BIG_ENDIAN:
        floats.byteswap()
    return values, base64.b64encode(floats.tobytes()).decode("ascii")


def _bad_input(message: str) -> SimulatedError:
    return invalid_request(message, "input", "invalid_value")


def _inputs(value: Any) -> tuple[list[bytes], int]:
    """Hash keys and token counts for a string, strings, a token array or token arrays."""
    if value is None:
        raise invalid_request(
            "Missing required parameter: 'input'.", "input", "missing_required_parameter"
        )
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise invalid_request(
            f"Invalid type for 'input': expected a string or an array, but got"
            f" {type_name(value)} instead.",
            "input",
            "invalid_type",
        )
    if not value:
        raise _bad_input("'input' must not be an empty array.")
    if len(value) > MAX_INPUTS:
        raise _bad_input(f"'input' must have at most {MAX_INPUTS} items, got {len(value)}.")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return [orjson.dumps(value)], len(value)
    keys: list[bytes] = []
    tokens = 0
    for item in value:
        if isinstance(item, str):
            if not item:
                raise _bad_input("'input' must not contain empty strings.")
            keys.append(item.encode("utf-8", "surrogatepass"))
            tokens += estimate_tokens(item)
        elif isinstance(item, list) and item and all(isinstance(t, int) for t in item):
            keys.append(orjson.dumps(item))
            tokens += len(item)
        else:
            raise _bad_input("'input' must be a string, strings, or arrays of token ids.")
    return keys, tokens


def plan_embeddings(body: Any, options: SimulatorOptions) -> EmbeddingPlan:
    body, model = require_model(body, options)
    keys, tokens = _inputs(body.get("input"))
    dimensions = body.get("dimensions")
    if dimensions is None:
        dimensions = options.embedding_dim
    elif isinstance(dimensions, bool) or not isinstance(dimensions, int):
        raise invalid_request(
            f"Invalid type for 'dimensions': expected an integer, but got"
            f" {type_name(dimensions)} instead.",
            "dimensions",
            "invalid_type",
        )
    elif not 1 <= dimensions <= options.embedding_dim:
        raise invalid_request(
            f"Invalid 'dimensions': expected a value between 1 and {options.embedding_dim},"
            f" but got {dimensions} instead.",
            "dimensions",
            "invalid_value",
        )
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise invalid_request(
            f"Invalid value: {encoding!r}. Supported values are: 'float' and 'base64'.",
            "encoding_format",
            "invalid_value",
        )
    return EmbeddingPlan(model, keys, tokens, dimensions, encoding == "base64")


def embeddings_body(plan: EmbeddingPlan) -> bytes:
    data: list[dict[str, Any]] = []
    for index, key in enumerate(plan.inputs):
        values, encoded = vector(key, plan.dimensions)
        data.append(
            {"object": "embedding", "index": index, "embedding": encoded if plan.base64 else values}
        )
    return orjson.dumps(
        {
            "object": "list",
            "data": data,
            "model": plan.model,
            "usage": {"prompt_tokens": plan.prompt_tokens, "total_tokens": plan.prompt_tokens},
        }
    )


def _model_json(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": MODEL_CREATED, "owned_by": "lockgate"}


def model_names(options: SimulatorOptions) -> list[str]:
    return list(DEFAULT_MODELS if options.models is None else options.models)


def models_body(options: SimulatorOptions) -> bytes:
    return orjson.dumps({"object": "list", "data": [_model_json(m) for m in model_names(options)]})


def model_body(options: SimulatorOptions, model: str) -> bytes:
    if options.models is not None and model not in options.models:
        raise model_not_found(model)
    return orjson.dumps(_model_json(model))

"""OpenAI embeddings request <-> Amazon Titan Text Embeddings (v2) InvokeModel bodies.

Titan embeds one text per call (`{"inputText": ...}` -> `{"embedding": [...],
"inputTextTokenCount": n}`), so an OpenAI input list becomes one call per item.
"""

from __future__ import annotations

import base64
import sys
from array import array
from typing import Any

from lockgate.core.errors import BadRequest, UpstreamError
from lockgate.core.types import JSON


def texts(body: JSON) -> list[str]:
    value = body.get("input")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise BadRequest(
            "Bedrock Titan embeddings take 'input' as a string or an array of strings",
            param="input",
        )
    return value


def invoke_body(text: str, body: JSON) -> JSON:
    out: JSON = {"inputText": text}
    if body.get("dimensions") is not None:
        out["dimensions"] = body["dimensions"]
    return out


def vector(answer: Any) -> tuple[list[float], int]:
    """The embedding and its token count from one Titan answer."""
    embedding = answer.get("embedding") if isinstance(answer, dict) else None
    if not isinstance(embedding, list):
        raise UpstreamError("Bedrock answered without an embedding")
    count = answer.get("inputTextTokenCount")
    return embedding, count if isinstance(count, int) and count > 0 else 0


def _encode(values: list[float], encoding: Any) -> list[float] | str:
    if encoding == "base64":  # OpenAI's base64: little-endian float32
        packed = array("f", values)
        if sys.byteorder == "big":
            packed.byteswap()
        return base64.b64encode(packed.tobytes()).decode("ascii")
    return values


def embeddings_body(results: list[tuple[list[float], int]], body: JSON, model: str) -> JSON:
    encoding = body.get("encoding_format")
    tokens = sum(count for _, count in results)
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": _encode(values, encoding)}
            for i, (values, _) in enumerate(results)
        ],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }

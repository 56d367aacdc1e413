"""OpenAI embeddings request/response <-> Gemini `batchEmbedContents`.

Gemini reports no token counts for embeddings; the usage lockgate returns (and bills) is an
estimate of about four characters a token, rounded up per input.
"""

from __future__ import annotations

import base64
import sys
from array import array
from typing import Any

from lockgate.core.errors import BadRequest, UpstreamError
from lockgate.core.types import JSON


def inputs(body: JSON) -> list[str]:
    value = body.get("input")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise BadRequest(
            "'input' must be a string or an array of strings for Gemini (token arrays are"
            " not supported)",
            param="input",
        )
    return value


def batch_request(body: JSON, model: str, texts: list[str]) -> JSON:
    extra: JSON = {}
    if isinstance(body.get("dimensions"), int):
        extra["outputDimensionality"] = body["dimensions"]
    native = body.get("gemini")
    if isinstance(native, dict):
        extra.update(native)  # e.g. taskType, title
    return {
        "requests": [
            {"model": f"models/{model}", "content": {"parts": [{"text": text}]}, **extra}
            for text in texts
        ]
    }


def estimate_tokens(texts: list[str]) -> int:
    return sum((len(text) + 3) // 4 for text in texts)


def embeddings_body(data: JSON, model: str, texts: list[str], encoding: Any) -> JSON:
    found = data.get("embeddings")
    if not isinstance(found, list) or len(found) != len(texts):
        raise UpstreamError("Gemini answered with a different number of embeddings")
    rows: list[JSON] = []
    for index, embedding in enumerate(found):
        values = embedding.get("values") if isinstance(embedding, dict) else None
        if not isinstance(values, list):
            raise UpstreamError("Gemini sent an embedding without values")
        vector: Any = values
        if encoding == "base64":
            # OpenAI's base64 form: little-endian float32 bytes.
            floats = array("f", values)
            if sys.byteorder == "big":
                floats.byteswap()
            vector = base64.b64encode(floats.tobytes()).decode("ascii")
        rows.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = estimate_tokens(texts)
    return {
        "object": "list",
        "data": rows,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }

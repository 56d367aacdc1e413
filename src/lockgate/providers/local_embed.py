"""`provider: local-embed`: OpenAI embeddings from the local all-MiniLM-L6-v2 model, offline.

Serves `/v1/embeddings` for a model group with no upstream at all (the `semantic` extra
provides the model); chat requests to it are refused as bad requests.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

import orjson

from lockgate.core.errors import BadRequest, UpstreamError
from lockgate.core.types import JSON, ChatResponse, ChunkStream, EmbeddingResponse, Usage

if TYPE_CHECKING:
    from lockgate.config.schema import DeploymentConfig
    from lockgate.providers.registry import ProviderContext

MAX_INPUTS = 2048  # OpenAI's own limit per request


def from_config(cfg: DeploymentConfig, ctx: ProviderContext) -> LocalEmbed:
    return LocalEmbed()


class LocalEmbed:
    name = "local-embed"

    async def chat(self, body: JSON, model: str) -> ChatResponse:
        raise _embeddings_only()

    async def chat_stream(self, body: JSON, model: str) -> ChunkStream:
        raise _embeddings_only()
        yield  # an async generator, as the protocol says

    async def embed(self, body: JSON, model: str) -> EmbeddingResponse:
        from lockgate.embedding import minilm

        texts = _texts(body.get("input"))
        dimensions = body.get("dimensions")
        if dimensions is not None and dimensions != minilm.DIMENSIONS:
            raise BadRequest(
                f"This model has {minilm.DIMENSIONS} dimensions; 'dimensions' cannot change it.",
                param="dimensions",
                code="invalid_value",
            )
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise BadRequest(
                "'encoding_format' must be 'float' or 'base64'.",
                param="encoding_format",
                code="invalid_value",
            )
        try:
            vectors, tokens = await minilm.embed(texts)
        except minilm.MissingExtra as exc:
            raise UpstreamError(str(exc), code="local_model_unavailable") from exc
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": base64.b64encode(row.astype("<f4").tobytes()).decode()
                if encoding == "base64"
                else row.tolist(),
            }
            for i, row in enumerate(vectors)
        ]
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        out = {"object": "list", "data": data, "model": model, "usage": usage}
        return EmbeddingResponse(body=out, usage=Usage.from_openai(usage), raw=orjson.dumps(out))


def _texts(value: object) -> list[str]:
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise BadRequest(
            "The local embedding model takes text input: a string or an array of strings.",
            param="input",
            code="invalid_value",
        )
    if len(texts) > MAX_INPUTS:
        raise BadRequest(
            f"At most {MAX_INPUTS} inputs per request.", param="input", code="invalid_value"
        )
    return texts


def _embeddings_only() -> BadRequest:
    return BadRequest(
        "This model serves embeddings only (provider local-embed); use /v1/embeddings.",
        param="model",
        code="invalid_value",
    )

"""Where the semantic cache's vectors come from: a configured embedding model group, called
through the gateway itself, or the local all-MiniLM-L6-v2 model."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from lockgate.core.types import EmbeddingRequest, RequestContext
from lockgate.features.cache.response_cache import Embedder
from lockgate.features.cache.semantic import Vector

if TYPE_CHECKING:
    from lockgate.core.pipeline import Pipeline


def local_embedder() -> Embedder:
    from lockgate.embedding import minilm

    async def embed(text: str, ctx: RequestContext) -> Vector:
        vectors, _ = await minilm.embed([text])
        row: Vector = vectors[0]
        return row

    return embed


def gateway_embedder(pipeline: Pipeline, model: str) -> Embedder:
    """Embeds through the pipeline as the calling request's principal, so the call is
    routed, retried and accounted like any other."""

    async def embed(text: str, ctx: RequestContext) -> Vector:
        child = RequestContext(request_id=f"{ctx.request_id}:cache-embed", principal=ctx.principal)
        body = {"model": model, "input": text, "encoding_format": "float"}
        result = await pipeline.embed(EmbeddingRequest(body=body, model=model), child)
        vector = np.asarray(result.body["data"][0]["embedding"], dtype=np.float32)
        return vector / max(float(np.linalg.norm(vector)), 1e-12)

    return embed

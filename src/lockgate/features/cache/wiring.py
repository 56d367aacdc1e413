"""Build the response cache from config: its backend, embedders and semantic index."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from lockgate.config.schema import Config
from lockgate.core.pipeline import Pipeline
from lockgate.core.tasks import TaskTracker
from lockgate.features.cache.backend import CacheBackend, MemoryBackend
from lockgate.features.cache.response_cache import Embedder, ResponseCache, SavedCost

if TYPE_CHECKING:
    from lockgate.features.cache.vectors import VectorStore
    from lockgate.storage.redis import SharedRedis


def build_cache(
    config: Config,
    tasks: TaskTracker,
    redis: SharedRedis | None,
    saved_usd: SavedCost,
) -> ResponseCache | None:
    cfg = config.cache
    if cfg is None:
        return None
    backend: CacheBackend
    if cfg.backend == "redis":
        from lockgate.storage.cache_redis import RedisCacheBackend

        assert redis is not None and config.redis is not None  # the schema requires it
        backend = RedisCacheBackend(redis, config.redis.socket_timeout)
    elif cfg.backend == "sqlite":
        from lockgate.storage.cache_sqlite import SqliteCacheBackend

        backend = SqliteCacheBackend(cfg.path, cfg.max_bytes)
    else:
        backend = MemoryBackend(cfg.max_bytes)
    groups = {m.name: m.cache for m in config.models}
    vectors: VectorStore | None = None
    if any(m.cache.enabled and m.cache.semantic.enabled for m in config.models):
        from lockgate.features.cache.vectors import LocalVectors, StoredVectors, VectorBackend

        if isinstance(backend, MemoryBackend):
            vectors = LocalVectors(cfg.semantic_max_entries)
        else:
            vectors = StoredVectors(cast(VectorBackend, backend))
    return ResponseCache(cfg, groups, backend, tasks, saved_usd=saved_usd, vectors=vectors)


def attach_embedders(cache: ResponseCache, config: Config, pipeline: Pipeline) -> None:
    """Semantic groups get their embedder once the pipeline exists (a configured embedding
    model is called through it)."""
    from lockgate.features.cache.embedders import gateway_embedder, local_embedder

    local: Embedder | None = None
    embedders: dict[str, Embedder] = {}
    for model in config.models:
        semantic = model.cache.semantic
        if not (model.cache.enabled and semantic.enabled):
            continue
        if semantic.embedding_model is not None:
            embedders[model.name] = gateway_embedder(pipeline, semantic.embedding_model)
        else:
            local = local or local_embedder()
            embedders[model.name] = local
    cache.set_embedders(embedders)

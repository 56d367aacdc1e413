"""The response cache the pipeline consults: plan (may this request use the cache, under
which key), lookup (exact, then semantic), store (after a successful answer).

Backends, the embedding model and the semantic index are handed in by the app, so the
pipeline sees only this object.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from lockgate.config.schema import CacheConfig, ModelCacheConfig
from lockgate.core.tasks import TaskTracker
from lockgate.core.types import (
    JSON,
    CacheControl,
    ChatRequest,
    ChatResponse,
    Chunk,
    ChunkStream,
    RequestContext,
    Usage,
)
from lockgate.features.cache.answers import assemble, replay, storable
from lockgate.features.cache.backend import CacheBackend
from lockgate.features.cache.keys import (
    CacheKey,
    bucket_digest,
    request_digest,
    scope_of,
    text_of,
)
from lockgate.features.cache.metrics import CacheMetrics

if TYPE_CHECKING:
    from lockgate.features.cache.semantic import Vector
    from lockgate.features.cache.vectors import VectorStore

log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "default"
# Embeds one text for the semantic cache, on behalf of the request in the context.
Embedder = Callable[[str, RequestContext], Awaitable["Vector"]]


@dataclass(slots=True)
class SemanticQuery:
    text: str  # the last user message
    bucket: str  # everything else that must match
    threshold: float
    embedder: Embedder
    vector: Vector | None = None


@dataclass(slots=True)
class CachePlan:
    key: CacheKey
    scope: str  # the scope kind for metrics: tenant or shared
    lookup: bool
    store: bool
    ttl: float
    semantic: SemanticQuery | None


@dataclass(slots=True)
class Hit:
    body: JSON

    def response(self) -> ChatResponse:
        # A hit costs nothing: no usage to bill, though the body keeps the answer's usage.
        return ChatResponse(body=self.body, usage=Usage())

    async def stream(self) -> ChunkStream:
        for data in replay(self.body):
            yield Chunk(data)


# USD an answer from this deployment with this usage cost: what a hit on it saves.
SavedCost = Callable[[str, Usage], float]


class ResponseCache:
    def __init__(
        self,
        cfg: CacheConfig,
        groups: dict[str, ModelCacheConfig],
        backend: CacheBackend,
        tasks: TaskTracker,
        *,
        saved_usd: SavedCost | None = None,
        vectors: VectorStore | None = None,
    ) -> None:
        self.cfg = cfg
        self.groups = groups
        self.backend = backend
        self.tasks = tasks
        self.metrics = CacheMetrics()
        self.vectors = vectors
        self._saved_usd = saved_usd
        self._embedders: dict[str, Embedder] = {}  # model group -> its semantic embedder
        self._scope = "shared" if cfg.scope == "shared" else "tenant"

    def plan(self, req: ChatRequest, ctx: RequestContext, group: str) -> CachePlan | None:
        """How this request uses the cache; None (and `bypass`) when it does not."""
        settings = self.groups.get(group)
        control = (ctx.cache_control or CacheControl()).merge(req.cache)
        if (
            settings is None
            or not settings.enabled
            or not (control.lookup or control.store)
            or not (req.body.get("temperature") == 0 or settings.temperature or control.force)
        ):
            ctx.cache = "bypass"
            self.metrics.lookup(group, self._scope, "bypass")
            return None
        namespace = control.namespace or DEFAULT_NAMESPACE
        scope = scope_of(ctx.principal, self.cfg.scope == "shared")
        key = CacheKey(namespace, group, request_digest(scope, namespace, req.model, req.body))
        ctx.cache = "miss" if control.lookup else "refresh"
        # The request's own ttl, else the group's, else the gateway's; never past max_ttl.
        ttl = control.ttl if control.ttl is not None else settings.ttl or self.cfg.ttl
        ttl = min(ttl, self.cfg.max_ttl)
        return CachePlan(
            key=key,
            scope=self._scope,
            lookup=control.lookup,
            store=control.store and ttl > 0,
            ttl=ttl,
            semantic=self._semantic(req, settings, scope, namespace, group),
        )

    def _semantic(
        self, req: ChatRequest, settings: ModelCacheConfig, scope: str, namespace: str, group: str
    ) -> SemanticQuery | None:
        semantic = settings.semantic
        embedder = self._embedders.get(group)
        if not semantic.enabled or embedder is None or self.vectors is None:
            return None
        messages: list[Any] = req.body["messages"]
        last = messages[-1]
        text = text_of(last.get("content"))
        if last.get("role") != "user" or not text:
            return None
        if not semantic.tool_turns and _uses_tools(req.body):
            return None
        bucket = bucket_digest(scope, namespace, req.model, req.body, messages[:-1], text)
        return SemanticQuery(text, bucket, semantic.threshold, embedder)

    async def lookup(self, plan: CachePlan, ctx: RequestContext) -> Hit | None:
        """The stored answer for this request, exact or (opted in) semantically close."""
        group = plan.key.group
        ctx.model_group = group
        if not plan.lookup:
            self.metrics.lookup(group, plan.scope, "refresh")
            return None
        result = "hit"
        raw = await self.backend.get(plan.key)
        if raw is None and plan.semantic is not None:
            raw = await self._nearest(plan.key, plan.semantic, ctx)
            result = "semantic_hit"
        entry = _decode(raw) if raw is not None else None
        if entry is None:
            self.metrics.lookup(group, plan.scope, "miss")
            return None
        ctx.cache = "hit"
        ctx.cache_age = max(0.0, time.time() - float(entry.get("created", 0)))
        self.metrics.lookup(group, plan.scope, result)
        usage = Usage.from_openai(entry["body"].get("usage"))
        self.metrics.saved(group, usage, float(entry.get("cost", 0.0)))
        return Hit(entry["body"])

    async def _nearest(
        self, key: CacheKey, query: SemanticQuery, ctx: RequestContext
    ) -> bytes | None:
        assert self.vectors is not None
        query.vector = await self._embed(query, ctx)
        if query.vector is None:
            return None
        found = await self.vectors.search(query.bucket, key, query.vector, query.threshold)
        if found is None:
            return None
        raw = await self.backend.get(found[0])
        if raw is None:  # expired or evicted since: forget its vector too
            await self.vectors.remove(query.bucket, found[0])
        return raw

    async def _embed(self, query: SemanticQuery, ctx: RequestContext) -> Vector | None:
        try:
            return await query.embedder(query.text, ctx)
        except Exception as exc:  # the semantic cache fails open: an ordinary miss
            log.warning("cache: embedding for the semantic cache failed: %r", exc)
            return None

    async def store(
        self, plan: CachePlan, body: JSON, deployment: str, ctx: RequestContext
    ) -> None:
        """Keep a successful answer (when it is worth keeping); slow backends write in the
        background so the response never waits for them."""
        if not plan.store:
            return
        if ctx.fallback:
            # Another model group's answer: not what this group would say once it recovers.
            self.metrics.write(plan.key.group, "fallback")
            return
        if not storable(body, self.cfg.store):
            self.metrics.write(plan.key.group, "not_storable")
            return
        usage = Usage.from_openai(body.get("usage"))
        cost = self._saved_usd(deployment, usage) if self._saved_usd is not None else 0.0
        raw = orjson.dumps({"created": time.time(), "cost": cost, "body": body})
        self.metrics.write(plan.key.group, "stored")
        if self.backend.slow or (plan.semantic is not None and plan.semantic.vector is None):
            self.tasks.spawn(
                self._write(plan, raw, ctx), name=f"cache-write:{plan.key.digest[:12]}"
            )
        else:
            await self._write(plan, raw, ctx)

    async def store_stream(
        self, plan: CachePlan, chunks: list[JSON], deployment: str, ctx: RequestContext
    ) -> None:
        body = assemble(chunks)
        if body is None:
            self.metrics.write(plan.key.group, "not_storable")
            return
        await self.store(plan, body, deployment, ctx)

    async def _write(self, plan: CachePlan, raw: bytes, ctx: RequestContext) -> None:
        await self.backend.set(plan.key, raw, plan.ttl)
        query = plan.semantic
        if query is None or self.vectors is None:
            return
        if query.vector is None:  # a refresh skipped the lookup that embeds
            query.vector = await self._embed(query, ctx)
        if query.vector is not None:
            await self.vectors.add(query.bucket, plan.key, query.vector, plan.ttl)

    def set_embedders(self, embedders: dict[str, Embedder]) -> None:
        self._embedders = embedders

    async def purge(self, namespace: str | None, group: str | None) -> int:
        if self.vectors is not None:
            await self.vectors.purge(namespace, group)
        return await self.backend.purge(namespace, group)

    async def stats(self) -> JSON:
        return {
            "backend": self.backend.name,
            "scope": self.cfg.scope,
            "store": await self.backend.stats(),
            "semantic_vectors_in_process": self.vectors.size() if self.vectors else None,
            "models": self.metrics.summary(),
        }

    async def close(self) -> None:
        await self.backend.close()


def _uses_tools(body: JSON) -> bool:
    if body.get("tools") or body.get("functions"):
        return True
    return any(
        isinstance(m, dict) and (m.get("role") in ("tool", "function") or m.get("tool_calls"))
        for m in body["messages"]
    )


def _decode(raw: bytes) -> JSON | None:
    try:
        entry = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("body"), dict):
        return None
    return entry

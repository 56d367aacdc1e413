"""The single request pipeline every inference request goes through.

    authenticate -> route -> call -> account -> (the edge responds)

Endpoints are thin translators around `Pipeline`; nothing else calls a provider.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from lockgate.core.auth import Authenticator
from lockgate.core.errors import GatewayError
from lockgate.core.router import Deployment, Router
from lockgate.core.types import (
    JSON,
    ChatRequest,
    ChatResponse,
    Chunk,
    ChunkStream,
    EmbeddingRequest,
    EmbeddingResponse,
    RequestContext,
    Usage,
)
from lockgate.features.metrics import Metrics

T = TypeVar("T", ChatResponse, EmbeddingResponse)


class Pipeline:
    def __init__(self, *, router: Router, auth: Authenticator, metrics: Metrics) -> None:
        self.router = router
        self.auth = auth
        self.metrics = metrics

    def authenticate(self, ctx: RequestContext) -> None:
        """Idempotent, so the edge may authenticate before it reads a large body."""
        if ctx.principal is None:
            ctx.principal = self.auth.authenticate(ctx.credential)

    async def chat(self, req: ChatRequest, ctx: RequestContext) -> ChatResponse:
        self.authenticate(ctx)
        dep, model = self._route(req.model, ctx)
        return await self._call(ctx, dep, lambda: dep.adapter.chat(req.body, model))

    async def embed(self, req: EmbeddingRequest, ctx: RequestContext) -> EmbeddingResponse:
        self.authenticate(ctx)
        dep, model = self._route(req.model, ctx)
        return await self._call(ctx, dep, lambda: dep.adapter.embed(req.body, model))

    async def chat_stream(self, req: ChatRequest, ctx: RequestContext) -> ChunkStream:
        """Open the stream and wait for its first chunk, so that every failure before the
        first byte reaches the client as an ordinary error response."""
        self.authenticate(ctx)
        dep, model = self._route(req.model, ctx)
        ctx.attempts += 1
        started = time.perf_counter()
        upstream = dep.adapter.chat_stream(req.body, model)
        try:
            first = await anext(upstream)
        except StopAsyncIteration:
            first = None
        except GatewayError as exc:
            await upstream.aclose()
            self._failed(ctx, dep, exc, started)
            raise
        except BaseException:
            await upstream.aclose()
            raise
        self.metrics.first_token(ctx.model_group, dep.id, time.perf_counter() - started)
        return self._relay(ctx, dep, first, upstream, started)

    async def _relay(
        self,
        ctx: RequestContext,
        dep: Deployment,
        first: Chunk | None,
        upstream: ChunkStream,
        started: float,
    ) -> ChunkStream:
        usage: JSON | None = None
        outcome = "cancelled"
        try:
            if first is not None:
                usage = first.data.get("usage") or usage
                yield first
            async for chunk in upstream:
                if chunk.data.get("usage"):
                    usage = chunk.data["usage"]
                yield chunk
            outcome = "ok"
        except GatewayError as exc:
            exc.deployment = dep.id
            outcome = exc.kind
            raise
        finally:
            await upstream.aclose()
            # A stream that was cut off is still accounted for what it produced.
            self._account(ctx, dep, Usage.from_openai(usage), outcome, started)

    def _route(self, model: str, ctx: RequestContext) -> tuple[Deployment, str]:
        group, matched = self.router.resolve(model)
        dep = group.pick()
        ctx.model_group = group.name
        ctx.deployment = dep.id
        ctx.provider = dep.provider
        return dep, dep.upstream_model(matched)

    async def _call(
        self, ctx: RequestContext, dep: Deployment, call: Callable[[], Awaitable[T]]
    ) -> T:
        ctx.attempts += 1
        started = time.perf_counter()
        try:
            result = await call()
        except GatewayError as exc:
            self._failed(ctx, dep, exc, started)
            raise
        self._account(ctx, dep, result.usage, "ok", started)
        return result

    def _failed(
        self, ctx: RequestContext, dep: Deployment, exc: GatewayError, started: float
    ) -> None:
        exc.deployment = dep.id
        self.metrics.upstream_done(ctx.model_group, dep.id, exc.kind, time.perf_counter() - started)

    def _account(
        self, ctx: RequestContext, dep: Deployment, usage: Usage, outcome: str, started: float
    ) -> None:
        self.metrics.upstream_done(ctx.model_group, dep.id, outcome, time.perf_counter() - started)
        self.metrics.usage(ctx.model_group, dep.id, usage)

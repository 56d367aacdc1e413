"""The single request pipeline every inference request goes through.

    authenticate -> cache lookup -> coalesce -> route -> call (retries, fallbacks)
        -> account -> cache store -> (the edge responds)

Accounting: each upstream answer is priced as it arrives (the request's cost), and each
client request that got past authentication hands one ledger record off when it is over:
answered, failed, or its stream ended or was cut off by the client.

Endpoints are thin translators around `Pipeline`; nothing else calls a provider.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar

import orjson

from lockgate.config.schema import RetryConfig
from lockgate.core.accounting import (
    Accountant,
    Ledger,
    Pricer,
    Settled,
    generated_chars,
    prompt_tokens,
)
from lockgate.core.auth import Authenticator
from lockgate.core.errors import AllAttemptsFailed, GatewayError
from lockgate.core.fallback import FallbackChain
from lockgate.core.retry import Failures, Retrier, RetryBudget
from lockgate.core.router import Deployment, Router
from lockgate.core.tasks import TaskTracker
from lockgate.core.timeouts import first_chunk, with_idle_timeout
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
from lockgate.features.cache.response_cache import CachePlan, Hit, ResponseCache
from lockgate.features.coalesce import Broadcast, Coalescer, CrossReplica, coalesce_key
from lockgate.features.metrics import Metrics

T = TypeVar("T")
R = TypeVar("R", ChatResponse, EmbeddingResponse)
Opened = tuple[Chunk | None, ChunkStream]


class Pipeline:
    def __init__(
        self,
        *,
        router: Router,
        auth: Authenticator,
        metrics: Metrics,
        tasks: TaskTracker,
        retry: RetryConfig | None = None,
        max_wait: float = 30.0,
        spill_wait: float = 1.0,
        pricer: Pricer | None = None,
        ledger: Ledger | None = None,
        cache: ResponseCache | None = None,
    ) -> None:
        self.router = router
        self.cache = cache
        self.accounts = Accountant(pricer, ledger)
        self.auth = auth
        self.metrics = metrics
        self.tasks = tasks
        self.coalescer = Coalescer(tasks)
        self.cross_replica: CrossReplica | None = None  # set when replicas share Redis
        cfg = retry or RetryConfig()
        budget = RetryBudget(cfg.budget_ratio, cfg.budget_window, cfg.budget_min_retries)
        self.retrier = Retrier(
            cfg, budget, random.Random(), tasks, max_wait=max_wait, spill_wait=spill_wait
        )

    def authenticate(self, ctx: RequestContext) -> None:
        """Idempotent, so the edge may authenticate before it reads a large body."""
        if ctx.principal is None:
            ctx.principal = self.auth.authenticate(ctx.credential)

    async def chat(self, req: ChatRequest, ctx: RequestContext) -> ChatResponse:
        self.authenticate(ctx)
        try:
            result = await self._chat(req, ctx)
        except BaseException as exc:
            self.accounts.settle(ctx, "chat", False, exc)
            raise
        self.accounts.settle(ctx, "chat", False, None)
        return result

    async def _chat(self, req: ChatRequest, ctx: RequestContext) -> ChatResponse:
        plan = self._cache_plan(req, ctx)
        if plan is not None and (hit := await self._cached(plan, ctx)) is not None:
            return hit.response()

        def call(dep: Deployment, model: str) -> Awaitable[ChatResponse]:
            return self._timed(ctx, dep, model, dep.adapter.chat(req.body, model))

        async def answer() -> tuple[ChatResponse, RequestContext]:
            result = await self._execute(ctx, req.model, req.fallbacks, call, _estimate(req.body))
            if plan is not None and self.cache is not None:
                await self.cache.store(plan, result.body, ctx.deployment, ctx)
            return result, ctx

        key = self._coalesce_key(req, ctx)
        if key is None:
            return (await answer())[0]
        produce: Callable[[], Awaitable[tuple[ChatResponse, RequestContext]]] = answer
        if self.cross_replica is not None:
            produce = partial(self.cross_replica.share, key, answer, ctx.deadline)
        (result, leader), _ = await self.coalescer.share(key, produce)
        if leader is not ctx:  # answered by another request's call, here or on a replica
            self._followed(ctx, leader)
        return result

    async def embed(self, req: EmbeddingRequest, ctx: RequestContext) -> EmbeddingResponse:
        self.authenticate(ctx)

        def call(dep: Deployment, model: str) -> Awaitable[EmbeddingResponse]:
            return self._timed(ctx, dep, model, dep.adapter.embed(req.body, model))

        try:
            result = await self._execute(ctx, req.model, None, call, _estimate(req.body))
        except BaseException as exc:
            self.accounts.settle(ctx, "embeddings", False, exc)
            raise
        self.accounts.settle(ctx, "embeddings", False, None)
        return result

    async def chat_stream(self, req: ChatRequest, ctx: RequestContext) -> ChunkStream:
        """Open the stream and wait for its first chunk, so that every failure before the
        first byte can still be retried or fall back, and otherwise reaches the client as
        an ordinary error response."""
        self.authenticate(ctx)
        try:
            stream = await self._chat_stream(req, ctx)
        except BaseException as exc:
            self.accounts.settle(ctx, "chat", True, exc)
            raise
        return Settled(stream, lambda exc: self.accounts.settle(ctx, "chat", True, exc))

    async def _chat_stream(self, req: ChatRequest, ctx: RequestContext) -> ChunkStream:
        plan = self._cache_plan(req, ctx)
        if plan is not None and (hit := await self._cached(plan, ctx)) is not None:
            return hit.stream()
        key = self._coalesce_key(req, ctx)
        if key is None:
            return await self._open_stream(req, ctx, plan)

        async def broadcast() -> tuple[Broadcast, RequestContext]:
            return Broadcast(await self._open_stream(req, ctx, plan), self.tasks, key), ctx

        async def until_done(shared: tuple[Broadcast, RequestContext]) -> None:
            await shared[0].finished()

        (stream, leader), joined = await self.coalescer.share(key, broadcast, until_done)
        if joined:
            self._followed(ctx, leader)
        return stream.subscribe()

    async def _open_stream(
        self, req: ChatRequest, ctx: RequestContext, plan: CachePlan | None
    ) -> ChunkStream:
        opened: dict[str, tuple[Deployment, str, float]] = {}

        async def call(dep: Deployment, model: str) -> Opened:
            started = time.perf_counter()
            ctx.upstream_model = model
            upstream = dep.adapter.chat_stream(req.body, model)
            try:
                first = await first_chunk(upstream, dep.first_token_timeout)
            except GatewayError as exc:
                await upstream.aclose()
                self._failed(ctx, dep, exc, started)
                raise
            except BaseException:
                await upstream.aclose()
                raise
            self.metrics.first_token(ctx.model_group, dep.id, time.perf_counter() - started)
            opened["it"] = (dep, model, started)
            return first, upstream

        async def discard(lost: Opened) -> None:
            await lost[1].aclose()  # a stream that lost a hedging race

        first, upstream = await self._execute(
            ctx, req.model, req.fallbacks, call, _estimate(req.body), discard
        )
        dep, model, started = opened["it"]
        return self._relay(ctx, dep, model, first, upstream, started, prompt_tokens(req.body), plan)

    def _cache_plan(self, req: ChatRequest, ctx: RequestContext) -> CachePlan | None:
        if self.cache is None:
            return None
        return self.cache.plan(req, ctx, self.router.resolve(req.model)[0].name)

    async def _cached(self, plan: CachePlan, ctx: RequestContext) -> Hit | None:
        assert self.cache is not None
        hit = await self.cache.lookup(plan, ctx)
        ctx.cache_hit = hit is not None
        return hit

    def _coalesce_key(self, req: ChatRequest, ctx: RequestContext) -> str | None:
        """The key identical concurrent requests share, or None when this one must not
        share: the request said so, or the model allows deterministic requests only."""
        if ctx.coalesce is False:
            return None
        if ctx.coalesce is None:
            mode = self.router.resolve(req.model)[0].coalesce
            if mode == "off" or (mode == "deterministic" and not _deterministic(req.body)):
                return None
        scope = ctx.principal.key_id if ctx.principal is not None else ""
        return coalesce_key(scope, req.model, req.body, stream=req.stream)

    def _followed(self, ctx: RequestContext, leader: RequestContext) -> None:
        ctx.follow(leader)
        self.metrics.coalesced_request(ctx.model_group)

    async def _execute(
        self,
        ctx: RequestContext,
        model: str,
        fallbacks: tuple[str, ...] | None,
        call: Callable[[Deployment, str], Awaitable[T]],
        tokens: Callable[[], int],
        discard: Callable[[T], Awaitable[None]] | None = None,
    ) -> T:
        """Route, then walk the model group and its fallbacks until an attempt succeeds."""
        group, matched = self.router.resolve(model)
        for name in fallbacks or ():
            self.router.group(name)  # a request naming an unknown fallback fails before any call
        self.retrier.budget.record_request()
        failures: Failures = []
        chain: FallbackChain | None = None  # built on the first failure: success pays nothing
        while True:
            try:
                return await self.retrier.run(ctx, group, matched, call, failures, tokens, discard)
            except GatewayError as exc:
                if chain is None:
                    chain = FallbackChain(self.router, group, fallbacks)
                following = chain.next(exc)
                if following is None:
                    if len(failures) == 1:
                        raise
                    raise AllAttemptsFailed(failures) from exc
                self.metrics.fallback(group.name, following.name)
                group, matched = following, ""
                ctx.fallback = True

    async def _relay(
        self,
        ctx: RequestContext,
        dep: Deployment,
        model: str,
        first: Chunk | None,
        upstream: ChunkStream,
        started: float,
        prompt_tokens: Callable[[], int],
        plan: CachePlan | None = None,
    ) -> ChunkStream:
        usage: JSON | None = None
        outcome = "cancelled"
        produced = 0  # characters generated, to estimate a stream that ends without usage
        chunks = with_idle_timeout(upstream, dep.idle_timeout)
        # A stream that completes is stored as one answer; its chunks are kept until then.
        kept: list[JSON] | None = [] if plan is not None and plan.store else None
        try:
            if first is not None:
                usage = first.data.get("usage") or usage
                produced += generated_chars(first.data)
                if kept is not None:
                    kept.append(first.data)
                yield first
            async for chunk in chunks:
                if chunk.data.get("usage"):
                    usage = chunk.data["usage"]
                else:
                    produced += generated_chars(chunk.data)
                if kept is not None:
                    kept.append(chunk.data)
                yield chunk
            outcome = "ok"
            if kept is not None and plan is not None and self.cache is not None:
                await self.cache.store_stream(plan, kept, dep.id, ctx)
        except GatewayError as exc:
            exc.deployment = dep.id
            outcome = exc.kind
            raise
        finally:
            await chunks.aclose()
            await upstream.aclose()
            # A stream that was cut off is still accounted for what it produced: the
            # upstream bills the prompt and the tokens generated so far, but sends usage
            # only at the end, so those are estimated (about four characters a token).
            if usage is None:
                estimate = Usage(prompt_tokens(), -(-produced // 4))
                self._account(ctx, dep, model, estimate, outcome, started, estimated=True)
            else:
                self._account(ctx, dep, model, Usage.from_openai(usage), outcome, started)

    async def _timed(
        self, ctx: RequestContext, dep: Deployment, model: str, call: Awaitable[R]
    ) -> R:
        started = time.perf_counter()
        ctx.upstream_model = model
        try:
            result = await call
        except GatewayError as exc:
            self._failed(ctx, dep, exc, started)
            raise
        self._account(ctx, dep, model, result.usage, "ok", started)
        return result

    def _failed(
        self, ctx: RequestContext, dep: Deployment, exc: GatewayError, started: float
    ) -> None:
        exc.deployment = dep.id
        self.metrics.upstream_done(ctx.model_group, dep.id, exc.kind, time.perf_counter() - started)

    def _account(
        self,
        ctx: RequestContext,
        dep: Deployment,
        model: str,
        usage: Usage,
        outcome: str,
        started: float,
        *,
        estimated: bool = False,
    ) -> None:
        """One upstream answer (or a stream's end): metrics, and its cost on the request."""
        self.metrics.upstream_done(ctx.model_group, dep.id, outcome, time.perf_counter() - started)
        self.metrics.usage(ctx.model_group, dep.id, usage)
        self.accounts.bill(ctx, dep.id, dep.provider, model, usage, outcome, estimated)


def _estimate(body: JSON) -> Callable[[], int]:
    """A request's tokens for TPM admission, before any are counted: about four bytes of
    JSON a token for the input, plus the most it may generate."""

    def estimate() -> int:
        size = len(orjson.dumps(body.get("messages") or body.get("input") or ""))
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        return size // 4 + (limit if isinstance(limit, int) else DEFAULT_OUTPUT_TOKENS)

    return estimate


DEFAULT_OUTPUT_TOKENS = 512


def _deterministic(body: JSON) -> bool:
    """Temperature 0 and one choice: the same request would get the same answer."""
    return body.get("temperature") == 0 and body.get("n") in (None, 1)

"""The single request pipeline every inference request goes through.

    authenticate -> admit (own limits, budgets) -> cache lookup -> coalesce -> route
        -> call (retries, fallbacks) -> account -> cache store -> (the edge responds)

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
from typing import Literal, TypeVar

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
from lockgate.core.errors import AllAttemptsFailed, ContextWindowExceeded, GatewayError
from lockgate.core.fallback import FallbackChain
from lockgate.core.gate import LATER, Finish, Gate, Later
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
from lockgate.features.redaction import BodyPolicy
from lockgate.features.tokens import PromptSize
from lockgate.features.tracing import Tracing

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
        bodies: BodyPolicy | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.router = router
        self.tracing = tracing  # None: not configured, and no per-request cost
        self.bodies = bodies  # per model group, everywhere, or per key (its metadata)
        self.cache = cache
        self.accounts = Accountant(pricer, ledger)
        self.auth = auth
        self.metrics = metrics
        self.tasks = tasks
        self.coalescer = Coalescer(tasks)
        self.cross_replica: CrossReplica | None = None  # set when replicas share Redis
        self.gate: Gate | None = None  # the gateway's own limits and budgets (governance)
        cfg = retry or RetryConfig()
        budget = RetryBudget(cfg.budget_ratio, cfg.budget_window, cfg.budget_min_retries)
        self.retrier = Retrier(
            cfg, budget, random.Random(), tasks, max_wait=max_wait, spill_wait=spill_wait
        )

    async def authenticate(self, ctx: RequestContext) -> None:
        """Idempotent, so the edge may authenticate before it reads a large body."""
        if ctx.principal is None:
            if self.tracing is None:
                ctx.principal = await self.auth.authenticate(ctx.credential)
                return
            started = time.time_ns()
            try:
                ctx.principal = await self.auth.authenticate(ctx.credential)
            except GatewayError as exc:
                self.tracing.step(ctx, "authenticate", started, exc)
                raise
            self.tracing.step(ctx, "authenticate", started)

    def _admit_now(
        self, ctx: RequestContext, model: str, body: JSON
    ) -> Finish | Literal[Later.LATER] | None:
        """The admit step where it needs no waiting, else LATER: await ``_admit_later``."""
        if self.gate is None:
            return None
        group = self.router.resolve(model)[0]
        ctx.model_group = group.name  # a refused request's ledger row names it
        return self.gate.admit_now(ctx, group, body)

    async def _admit_later(self, ctx: RequestContext, model: str, body: JSON) -> Finish | None:
        assert self.gate is not None  # without one, _admit_now answers
        return await self.gate.admit_later(ctx, self.router.resolve(model)[0], body)

    def _settle(
        self,
        ctx: RequestContext,
        endpoint: str,
        stream: bool,
        exc: BaseException | None,
        finish: Finish | None,
    ) -> None:
        """The request is over: its ledger record, then its limits and budget settled."""
        self.accounts.settle(ctx, endpoint, stream, exc)
        if finish is not None:
            finish()

    async def chat(self, req: ChatRequest, ctx: RequestContext) -> ChatResponse:
        await self.authenticate(ctx)
        finish: Finish | None = None
        try:  # a request refused at the admit step has its ledger row too
            now = self._admit_now(ctx, req.model, req.body)
            finish = await self._admit_later(ctx, req.model, req.body) if now is LATER else now
            result = await self._chat(req, ctx)
        except BaseException as exc:
            self._keep_bodies(ctx, req.body, None)
            self._settle(ctx, "chat", False, exc, finish)
            raise
        self._keep_bodies(ctx, req.body, result.body)
        self._settle(ctx, "chat", False, None, finish)
        return result

    def _keep_bodies(self, ctx: RequestContext, request: JSON, response: JSON | None) -> None:
        bodies = self.bodies
        if bodies is None:
            return
        by_key = ctx.principal is not None and ctx.principal.log_bodies
        if by_key or bodies.wanted(ctx.model_group, str(request.get("model"))):
            ctx.bodies = bodies.capture(request, response)

    async def _chat(self, req: ChatRequest, ctx: RequestContext) -> ChatResponse:
        plan = self._cache_plan(req, ctx)
        if plan is not None and (hit := await self._cached(plan, ctx)) is not None:
            return hit.response()

        size = PromptSize(req.body)

        async def call(dep: Deployment, model: str) -> ChatResponse:
            await _fits(dep, model, req.body, size)
            return await self._timed(ctx, dep, model, dep.adapter.chat(req.body, model))

        async def answer() -> tuple[ChatResponse, RequestContext]:
            await self._precount(req.model, size)
            result = await self._execute(
                ctx, req.model, req.fallbacks, call, _estimate(req.body, size)
            )
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
        await self.authenticate(ctx)
        ctx.operation = "embeddings"

        def call(dep: Deployment, model: str) -> Awaitable[EmbeddingResponse]:
            return self._timed(ctx, dep, model, dep.adapter.embed(req.body, model))

        finish: Finish | None = None
        try:
            now = self._admit_now(ctx, req.model, req.body)
            finish = await self._admit_later(ctx, req.model, req.body) if now is LATER else now
            result = await self._execute(ctx, req.model, None, call, _estimate(req.body))
        except BaseException as exc:
            self._settle(ctx, "embeddings", False, exc, finish)
            raise
        self._settle(ctx, "embeddings", False, None, finish)
        return result

    async def chat_stream(self, req: ChatRequest, ctx: RequestContext) -> ChunkStream:
        """Open the stream and wait for its first chunk, so that every failure before the
        first byte can still be retried or fall back, and otherwise reaches the client as
        an ordinary error response."""
        await self.authenticate(ctx)
        finish: Finish | None = None
        try:
            now = self._admit_now(ctx, req.model, req.body)
            finish = await self._admit_later(ctx, req.model, req.body) if now is LATER else now
            stream = await self._chat_stream(req, ctx)
            self._keep_bodies(ctx, req.body, None)  # a stream's answer is not kept
        except BaseException as exc:
            self._keep_bodies(ctx, req.body, None)
            self._settle(ctx, "chat", True, exc, finish)
            raise
        return Settled(stream, lambda exc: self._settle(ctx, "chat", True, exc, finish))

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
        size = PromptSize(req.body)

        async def call(dep: Deployment, model: str) -> Opened:
            await _fits(dep, model, req.body, size)
            started = time.perf_counter()
            ctx.upstream_model = model
            span = self.tracing.attempt(ctx, dep.id, dep.provider, model) if self.tracing else None
            upstream = dep.adapter.chat_stream(req.body, model)
            try:
                first = await first_chunk(upstream, dep.first_token_timeout)
            except GatewayError as exc:
                await upstream.aclose()
                self._failed(ctx, dep, exc, started)
                if span is not None:
                    span.end(exc.kind)
                raise
            except BaseException:
                await upstream.aclose()
                if span is not None:
                    span.end("cancelled")
                raise
            if span is not None:
                span.first_token()
                span.end("ok")  # the rest of the stream is relayed under the request's span
            now = time.perf_counter()
            self.metrics.first_token(ctx.model_group, dep.id, now - started, dep.provider)
            ctx.first_token = now - ctx.started
            opened["it"] = (dep, model, started)
            return first, upstream

        async def discard(lost: Opened) -> None:
            await lost[1].aclose()  # a stream that lost a hedging race

        await self._precount(req.model, size)
        first, upstream = await self._execute(
            ctx, req.model, req.fallbacks, call, _estimate(req.body, size), discard
        )
        dep, model, started = opened["it"]
        return self._relay(ctx, dep, model, first, upstream, started, prompt_tokens(req.body), plan)

    async def _precount(self, model: str, size: PromptSize) -> None:
        """Count the prompt with tiktoken (in a thread) when a deployment of the group
        admits by tokens per minute, so that its reservation is exact, not estimated."""
        group, _ = self.router.resolve(model)
        for dep in group.deployments:
            if dep.admission.tokens is not None:
                await size.tokens(model if "*" in dep.model else dep.model)
                return

    def _cache_plan(self, req: ChatRequest, ctx: RequestContext) -> CachePlan | None:
        if self.cache is None:
            return None
        return self.cache.plan(req, ctx, self.router.resolve(req.model)[0].name)

    async def _cached(self, plan: CachePlan, ctx: RequestContext) -> Hit | None:
        assert self.cache is not None
        started = time.time_ns() if self.tracing is not None else 0
        hit = await self.cache.lookup(plan, ctx)
        ctx.cache_hit = hit is not None
        if self.tracing is not None:
            self.tracing.step(ctx, "cache lookup", started)
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
        if self.tracing is not None:
            return await self._traced(ctx, dep, model, call, started)
        try:
            result = await call
        except GatewayError as exc:
            self._failed(ctx, dep, exc, started)
            raise
        self._account(ctx, dep, model, result.usage, "ok", started)
        return result

    async def _traced(
        self, ctx: RequestContext, dep: Deployment, model: str, call: Awaitable[R], started: float
    ) -> R:
        assert self.tracing is not None
        span = self.tracing.attempt(ctx, dep.id, dep.provider, model)
        try:
            result = await call
        except GatewayError as exc:
            self._failed(ctx, dep, exc, started)
            span.end(exc.kind)
            raise
        except BaseException:
            span.end("cancelled")
            raise
        self._account(ctx, dep, model, result.usage, "ok", started)
        span.end("ok", result.usage)
        return result

    def _failed(
        self, ctx: RequestContext, dep: Deployment, exc: GatewayError, started: float
    ) -> None:
        exc.deployment = dep.id
        seconds = time.perf_counter() - started
        self.metrics.upstream_done(
            ctx.model_group, dep.id, exc.kind, seconds, dep.provider, ctx.operation
        )

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
        seconds = time.perf_counter() - started
        metrics, group = self.metrics, ctx.model_group
        metrics.upstream_done(group, dep.id, outcome, seconds, dep.provider, ctx.operation)
        metrics.usage(group, dep.id, usage, dep.provider, ctx.operation)
        self.accounts.bill(ctx, dep.id, dep.provider, model, usage, outcome, estimated)


async def _fits(dep: Deployment, model: str, body: JSON, size: PromptSize) -> None:
    """Refuse, before sending, a request the deployment's context window cannot hold: no
    upstream call is paid for, and the request goes to its context-window fallbacks."""
    if dep.context_window is None:
        return
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    wanted = await size.tokens(model) + (limit if isinstance(limit, int) else 0)
    if wanted > dep.context_window:
        raise ContextWindowExceeded(
            f"This model's maximum context length is {dep.context_window} tokens. However,"
            f" you requested {wanted} tokens (counted by lockgate before sending).",
            param="messages",
            deployment=dep.id,
        )


def _estimate(body: JSON, counted: PromptSize | None = None) -> Callable[[], int]:
    """A request's tokens for TPM admission: the prompt as tiktoken counted it when it was
    counted (a deployment admits by TPM or checks its context window), else about four
    bytes of JSON a token; plus the most it may generate."""

    def estimate() -> int:
        prompt = counted.known() if counted is not None else None
        if prompt is None:
            prompt = len(orjson.dumps(body.get("messages") or body.get("input") or "")) // 4
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        return prompt + (limit if isinstance(limit, int) else DEFAULT_OUTPUT_TOKENS)

    return estimate


DEFAULT_OUTPUT_TOKENS = 512


def _deterministic(body: JSON) -> bool:
    """Temperature 0 and one choice: the same request would get the same answer."""
    return body.get("temperature") == 0 and body.get("n") in (None, 1)

"""The pipeline's account step: what a request cost, and its ledger record handed off.

The pipeline prices each upstream answer through a `Pricer` and, once a client request is
over (answered, failed, or its stream ended or was cut off), hands one `LedgerRecord` to a
`Ledger`. Both are wired in app.py; the core knows neither prices nor storage.
Money is an integer number of nano-dollars (USD * 10**9).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any, NamedTuple, Protocol

import orjson

from lockgate.core.errors import GatewayError
from lockgate.core.ledger_record import LedgerRecord
from lockgate.core.types import JSON, Chunk, ChunkStream, RequestContext, Usage

NANOS_PER_USD = 10**9


class Cost(NamedTuple):  # a tuple: made for every answer, cheaply
    nanos: int  # USD * 10**9
    priced: bool = True  # False: no price is known for the model; counted as 0


class Pricer(Protocol):
    def cost(self, deployment: str, provider: str, model: str, usage: Usage) -> Cost:
        """The cost of one upstream answer, counted as spent; never raises (an unknown
        model costs 0)."""
        ...

    def quote(self, deployment: str, provider: str, model: str, usage: Usage) -> Cost:
        """What ``usage`` would cost, not counted as spent (a budget's reservation)."""
        ...

    def flat_rates(self, deployment: str, provider: str, model: str) -> tuple[int, int] | None:
        """Whole nano-dollars per prompt and per completion token when that is exactly
        what plain usage costs (no tiers, no fees), else None: ask ``quote``."""
        ...


class Ledger(Protocol):
    def record(self, record: LedgerRecord) -> None:
        """Take a record for writing later; never blocks, never raises."""
        ...


def ledger_record(
    ctx: RequestContext,
    *,
    endpoint: str,
    stream: bool,
    status: str,
    http_status: int,
    request_id: str | None = None,
    error_type: str | None = None,
) -> LedgerRecord:
    """The record of ``ctx`` as it stands: what its upstream answers used and cost so far."""
    elapsed = time.perf_counter() - ctx.started
    usage = ctx.usage or _NO_USAGE
    principal = ctx.principal
    if principal is None:
        key_id, user_id, team_id = "", None, None
    else:
        key_id, user_id, team_id = principal.key_id, principal.user_id, principal.team_id
    # Positional, in field order, without LedgerRecord's own __new__: once per request.
    return _new_tuple(LedgerRecord, (
        request_id or ctx.request_id, time.time() - elapsed, key_id, user_id, team_id,
        endpoint, ctx.model_group, ctx.deployment, ctx.provider, ctx.upstream_model,
        usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens,
        usage.cache_creation_tokens, usage.reasoning_tokens, ctx.cost or 0, ctx.priced,
        ctx.usage_estimated, ctx.cache_hit, ctx.coalesced, stream, round(elapsed * 1000),
        status, http_status, ctx.attempts, ctx.fallback, ctx.hedged, ctx.cache,
        None if ctx.first_token is None else round(ctx.first_token * 1000), error_type,
        ctx.bodies,
    ))  # fmt: skip


_NO_USAGE = Usage()
_new_tuple = tuple.__new__
_FREE = Cost(0, priced=False)


class Accountant:
    """The account step: costs onto the request, one record per request to the ledger."""

    def __init__(self, pricer: Pricer | None, ledger: Ledger | None) -> None:
        self.pricer = pricer
        self.ledger = ledger

    def bill(
        self,
        ctx: RequestContext,
        deployment: str,
        provider: str,
        model: str,
        usage: Usage,
        outcome: str,
        estimated: bool = False,
    ) -> None:
        """One upstream answer's (or a stream's) usage and cost onto the request."""
        pricer = self.pricer
        cost = pricer.cost(deployment, provider, model, usage) if pricer else _FREE
        if not ctx.records:
            ctx.bill(usage, cost.nanos, cost.priced, estimated)
            return
        # The request is over (its client left) but a shared or hedged call it started went
        # on and produced this: bill it on a record of its own.
        late = RequestContext(ctx.request_id, principal=ctx.principal, started=ctx.started)
        late.stamp(ctx.model_group, deployment, provider)
        late.upstream_model, late.attempts = model, 1
        late.bill(usage, cost.nanos, cost.priced, estimated)
        if self.ledger is not None:
            ctx.records += 1
            self.ledger.record(
                ledger_record(
                    late, endpoint="chat", stream=False, status=outcome, http_status=200,
                    request_id=f"{ctx.request_id}#{ctx.records}",
                )
            )  # fmt: skip

    def settle(
        self, ctx: RequestContext, endpoint: str, stream: bool, exc: BaseException | None
    ) -> None:
        """The request is over: hand its one ledger record off."""
        if ctx.records or self.ledger is None:
            return
        ctx.records = 1
        error_type = None if exc is None else type(exc).__name__
        if exc is None:
            status, http_status = "ok", 200
        elif isinstance(exc, GatewayError):
            status, http_status = exc.kind, exc.status
        elif isinstance(exc, GeneratorExit | asyncio.CancelledError):
            status, http_status = "client_disconnected", 499
        else:
            status, http_status = "internal", 500
        self.ledger.record(
            ledger_record(
                ctx, endpoint=endpoint, stream=stream, status=status, http_status=http_status,
                error_type=error_type,
            )
        )  # fmt: skip


class Settled(AsyncGenerator[Chunk, None]):
    """A stream that calls ``on_end`` once when it is over: exhausted (None), failed (the
    error), or closed early by its reader (GeneratorExit), even if it was never started."""

    def __init__(self, inner: ChunkStream, on_end: Callable[[BaseException | None], None]):
        self._inner = inner
        self._on_end: Callable[[BaseException | None], None] | None = on_end

    def _end(self, exc: BaseException | None) -> None:
        on_end, self._on_end = self._on_end, None
        if on_end is not None:
            on_end(exc)

    async def asend(self, value: None) -> Chunk:
        try:
            return await self._inner.asend(value)
        except StopAsyncIteration:
            self._end(None)
            raise
        except BaseException as exc:
            self._end(exc)
            raise

    async def athrow(self, typ: Any, val: Any = None, tb: Any = None) -> Chunk:
        try:
            return await self._inner.athrow(typ, val, tb)
        except BaseException as exc:
            self._end(exc)
            raise

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._end(GeneratorExit())


def prompt_tokens(body: JSON) -> Callable[[], int]:
    """A request's prompt tokens, estimated later (for a stream that ends before the
    upstream reports usage)."""
    return lambda: estimate_prompt_tokens(body)


def estimate_prompt_tokens(body: JSON) -> int:
    """About four bytes of message JSON a token."""
    return len(orjson.dumps(body.get("messages") or "")) // 4


def generated_chars(data: JSON) -> int:
    """Characters of content and tool-call arguments in one streamed chunk."""
    count = 0
    for choice in data.get("choices") or ():
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if isinstance(content, str):
            count += len(content)
        for call in delta.get("tool_calls") or ():
            arguments = (call.get("function") or {}).get("arguments")
            if isinstance(arguments, str):
                count += len(arguments)
    return count

"""The pipeline's account step: what a request cost, and its ledger record handed off.

The pipeline prices each upstream answer through a `Pricer` and, once a client request is
over (answered, failed, or its stream ended or was cut off), hands one `LedgerRecord` to a
`Ledger`. Both are wired in app.py; the core knows neither prices nor storage.
Money is an integer number of nano-dollars (USD * 10**9).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import Any, Protocol

from lockgate.core.types import RequestContext, Usage

NANOS_PER_USD = 10**9


@dataclass(slots=True, frozen=True)
class Cost:
    nanos: int  # USD * 10**9
    priced: bool = True  # False: no price is known for the model; counted as 0


class Pricer(Protocol):
    def cost(self, deployment: str, provider: str, model: str, usage: Usage) -> Cost:
        """The cost of one upstream answer; never raises (an unknown model costs 0)."""
        ...


class Ledger(Protocol):
    def record(self, record: LedgerRecord) -> None:
        """Take a record for writing later; never blocks, never raises."""
        ...


@dataclass(slots=True)
class LedgerRecord:
    """One client request, as billed."""

    request_id: str
    started_at: float  # unix seconds
    key_id: str
    user_id: str | None
    team_id: str | None
    endpoint: str
    model_group: str
    deployment: str
    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cache_creation_tokens: int
    reasoning_tokens: int
    cost_nanos: int
    priced: bool
    usage_estimated: bool
    cache_hit: bool
    coalesced: bool
    stream: bool
    latency_ms: int
    status: str
    http_status: int
    attempts: int

    def to_dict(self) -> dict[str, Any]:
        # Every field is a plain str/int/float/bool/None: no need for asdict's deep copy.
        return {name: getattr(self, name) for name in _FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LedgerRecord:
        return cls(**data)


_FIELDS = tuple(f.name for f in fields(LedgerRecord))


def ledger_record(
    ctx: RequestContext,
    *,
    endpoint: str,
    stream: bool,
    status: str,
    http_status: int,
    request_id: str | None = None,
) -> LedgerRecord:
    """The record of ``ctx`` as it stands: what its upstream answers used and cost so far."""
    now = time.perf_counter()
    usage = ctx.usage or Usage()
    principal = ctx.principal
    return LedgerRecord(
        request_id=request_id or ctx.request_id,
        started_at=time.time() - (now - ctx.started),
        key_id=principal.key_id if principal is not None else "",
        user_id=principal.user_id if principal is not None else None,
        team_id=principal.team_id if principal is not None else None,
        endpoint=endpoint,
        model_group=ctx.model_group,
        deployment=ctx.deployment,
        provider=ctx.provider,
        model=ctx.upstream_model,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_tokens=usage.cached_tokens,
        cache_creation_tokens=usage.cache_creation_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        cost_nanos=ctx.cost or 0,
        priced=ctx.priced,
        usage_estimated=ctx.usage_estimated,
        cache_hit=ctx.cache_hit,
        coalesced=ctx.coalesced,
        stream=stream,
        latency_ms=round((now - ctx.started) * 1000),
        status=status,
        http_status=http_status,
        attempts=ctx.attempts,
    )

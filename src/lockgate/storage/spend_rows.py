"""Ledger records turned into plain rows and counter deltas, ready for a driver.

Built in the ledger's writer (never on the request path): one tuple per ledger row in
`LEDGER_COLUMNS` order, and one tuple per (scope, period) counter in lock order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lockgate.core.ledger_record import LedgerRecord

EPOCH = date(1970, 1, 1)

# spend_ledger's columns as written (`id` is the database's); `created_at` and `day` come
# from the record's `started_at`.
LEDGER_COLUMNS = (
    "request_id", "created_at", "day", "key_id", "user_id", "team_id", "endpoint",
    "model_group", "deployment", "provider", "model", "prompt_tokens", "completion_tokens",
    "cached_tokens", "cache_creation_tokens", "reasoning_tokens", "cost_nanos", "priced",
    "usage_estimated", "cache_hit", "coalesced", "stream", "latency_ms", "status",
    "http_status", "attempts", "fallback", "hedged", "cache_status", "ttft_ms",
    "error_type", "bodies",
)  # fmt: skip
COUNTER_COLUMNS = (
    "scope_kind", "scope_id", "period", "period_start",
    "spent_nanos", "requests", "prompt_tokens", "completion_tokens",
)  # fmt: skip
COUNTER_KEY = COUNTER_COLUMNS[:4]
# A value longer than its column would fail the whole batch on PostgreSQL, again at every
# retry: cut it to fit instead (ids and names come from config and clients). The lengths
# are schema.py's (a test holds them equal): this module is imported by the ledger's child
# process, which must not load SQLAlchemy.
LENGTHS = {
    "spend_ledger.request_id": 160, "spend_ledger.key_id": 64, "spend_ledger.user_id": 64,
    "spend_ledger.team_id": 64, "spend_ledger.endpoint": 32, "spend_ledger.model_group": 200,
    "spend_ledger.deployment": 200, "spend_ledger.provider": 64, "spend_ledger.model": 200,
    "spend_ledger.status": 32, "spend_ledger.cache_status": 16, "spend_ledger.error_type": 64,
    "spend_counters.scope_kind": 8, "spend_counters.scope_id": 64, "spend_counters.period": 8,
}  # fmt: skip
_RID, _KEY, _USER, _TEAM, _END, _GROUP, _DEPLOYMENT, _PROV, _MODEL, _STATUS, _CACHE, _ERR = (
    LENGTHS[f"spend_ledger.{name}"]
    for name in (
        "request_id", "key_id", "user_id", "team_id", "endpoint", "model_group",
        "deployment", "provider", "model", "status", "cache_status", "error_type",
    )
)  # fmt: skip
_SCOPE = LENGTHS["spend_counters.scope_id"]


def period_starts(day: date) -> dict[str, date]:
    """The start of each budget period ``day`` falls in (UTC; weeks start on Monday)."""
    return {
        "daily": day,
        "weekly": day - timedelta(days=day.weekday()),
        "monthly": day.replace(day=1),
        "none": EPOCH,
    }


def _cut(value: str | None, length: int) -> Any:
    return value[:length] if value is not None and len(value) > length else value


def ledger_rows(records: Sequence[LedgerRecord], sqlite: bool) -> list[tuple[Any, ...]]:
    """One tuple per record in LEDGER_COLUMNS order. SQLite stores times as SQLAlchemy
    does (ISO text, UTC, no offset) so that reports read them back through SQLAlchemy."""
    out = []
    seconds: dict[int, tuple[Any, Any]] = {}  # a batch spans a few seconds: format each once
    base: Any
    for r in records:
        started = r.started_at
        whole = math.floor(started)
        micros = round((started - whole) * 1_000_000)  # as datetime rounds: half to even
        if micros == 1_000_000:
            whole, micros = whole + 1, 0
        second = seconds.get(whole)
        if second is None:
            at = datetime.fromtimestamp(whole, UTC)
            if sqlite:  # SQLAlchemy's text for a DateTime: "%Y-%m-%d %H:%M:%S.%f"
                second = (at.strftime("%Y-%m-%d %H:%M:%S."), at.date().isoformat())
            else:
                second = (at, at.date())
            seconds[whole] = second
        base, day = second
        created = f"{base}{micros:06d}" if sqlite else base.replace(microsecond=micros)
        out.append(
            (
                _cut(r.request_id, _RID), created, day, _cut(r.key_id, _KEY),
                _cut(r.user_id, _USER), _cut(r.team_id, _TEAM), _cut(r.endpoint, _END),
                _cut(r.model_group, _GROUP), _cut(r.deployment, _DEPLOYMENT),
                _cut(r.provider, _PROV), _cut(r.model, _MODEL), r.prompt_tokens,
                r.completion_tokens, r.cached_tokens, r.cache_creation_tokens,
                r.reasoning_tokens, r.cost_nanos, r.priced, r.usage_estimated, r.cache_hit,
                r.coalesced, r.stream, r.latency_ms, _cut(r.status, _STATUS),
                r.http_status, r.attempts, r.fallback, r.hedged,
                _cut(r.cache_status, _CACHE), r.ttft_ms, _cut(r.error_type, _ERR), r.bodies,
            )
        )  # fmt: skip
    return out


def counter_deltas(records: Iterable[LedgerRecord], sqlite: bool) -> list[tuple[Any, ...]]:
    """What ``records`` add to each (scope, period) counter, as COUNTER_COLUMNS tuples in
    lock order (the key's order)."""
    # Sum per (day, key, user, team) first: a batch holds a few of those, each spread over
    # up to twelve counters afterwards.
    sums: dict[tuple[float, str, str | None, str | None], list[int]] = {}
    for r in records:
        group = (r.started_at // 86400, r.key_id, r.user_id, r.team_id)
        total = sums.get(group)
        if total is None:
            total = sums[group] = [0, 0, 0, 0]
        total[0] += r.cost_nanos
        total[1] += 1
        total[2] += r.prompt_tokens
        total[3] += r.completion_tokens
    deltas: dict[tuple[str, str, str, date], list[int]] = {}
    for (days, key_id, user_id, team_id), total in sums.items():
        starts = period_starts(EPOCH + timedelta(days=days))
        for kind, scope_id in (("key", key_id), ("user", user_id), ("team", team_id)):
            if kind != "key" and not scope_id:
                continue
            scope_id = _cut(scope_id, _SCOPE)
            for period, start in starts.items():
                counter = deltas.setdefault((kind, scope_id, period, start), [0, 0, 0, 0])
                for i in range(4):
                    counter[i] += total[i]
    return [
        (kind, scope_id, period, start.isoformat() if sqlite else start, *c)
        for (kind, scope_id, period, start), c in sorted(deltas.items())
    ]

"""Spend reports for the admin API and the CLI: spend grouped by key, user, team, model,
deployment, provider or day over a time range, and a scope's usage in its current periods.

Amounts are integer nano-dollars (USD * 10**9). Time ranges are half-open [start, end) and
compared in UTC; a naive datetime is taken as UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from lockgate.storage.schema import PERIODS, SCOPE_KINDS, spend_counters, spend_ledger
from lockgate.storage.spend_rows import period_starts

_L = spend_ledger.c
GROUPS: dict[str, Any] = {
    "key": _L.key_id,
    "user": _L.user_id,
    "team": _L.team_id,
    "model": _L.model_group,
    "deployment": _L.deployment,
    "provider": _L.provider,
    "day": _L.day,
}


@dataclass(frozen=True)
class SpendRow:
    group: str | None  # the key/user/team/model... id; a day as YYYY-MM-DD; None: unset
    cost_nanos: int
    requests: int
    errors: int  # requests that did not end "ok"
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int


@dataclass(frozen=True)
class PeriodUsage:
    period: str
    period_start: date
    spent_nanos: int
    requests: int
    prompt_tokens: int
    completion_tokens: int


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _naive_if_sqlite(engine: AsyncEngine, moment: datetime) -> datetime:
    # SQLite keeps timestamps as text without a zone: compare like with like.
    return moment.replace(tzinfo=None) if engine.dialect.name == "sqlite" else moment


async def spend_by(
    engine: AsyncEngine,
    by: str,
    start: datetime,
    end: datetime,
    *,
    key_id: str | None = None,
    user_id: str | None = None,
    team_id: str | None = None,
    model: str | None = None,
) -> list[SpendRow]:
    """Spend over [start, end) grouped ``by`` one of GROUPS, most expensive first."""
    if by not in GROUPS:
        raise ValueError(f"cannot group spend by {by!r}; one of: {', '.join(GROUPS)}")
    column = GROUPS[by]
    first = _naive_if_sqlite(engine, _utc(start))
    last = _naive_if_sqlite(engine, _utc(end))
    conditions: list[ColumnElement[bool]] = [_L.created_at >= first, _L.created_at < last]
    # The day column is indexed with each scope: bound it too, so the index narrows.
    conditions += [_L.day >= _utc(start).date(), _L.day <= _utc(end).date()]
    for col, value in ((_L.key_id, key_id), (_L.user_id, user_id), (_L.team_id, team_id)):
        if value is not None:
            conditions.append(col == value)
    if model is not None:
        conditions.append(_L.model_group == model)
    cost = func.sum(_L.cost_nanos)
    stmt = (
        select(
            column,
            cost,
            func.count(),
            func.sum(case((_L.status == "ok", 0), else_=1)),
            func.sum(_L.prompt_tokens),
            func.sum(_L.completion_tokens),
            func.sum(_L.cached_tokens),
            func.sum(_L.reasoning_tokens),
        )
        .where(and_(*conditions))
        .group_by(column)
        .order_by(column if by == "day" else cost.desc(), column)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [
        SpendRow(
            group=row[0].isoformat() if isinstance(row[0], date) else row[0],
            cost_nanos=int(row[1] or 0),
            requests=int(row[2]),
            errors=int(row[3] or 0),
            prompt_tokens=int(row[4] or 0),
            completion_tokens=int(row[5] or 0),
            cached_tokens=int(row[6] or 0),
            reasoning_tokens=int(row[7] or 0),
        )
        for row in rows
    ]


async def current_usage(
    engine: AsyncEngine, scope_kind: str, scope_id: str, today: date | None = None
) -> dict[str, PeriodUsage]:
    """A key's, user's or team's spend in the periods containing ``today`` (UTC): daily,
    weekly (from Monday), monthly, and "none" (since the beginning)."""
    if scope_kind not in SCOPE_KINDS:
        raise ValueError(f"scope kind must be one of {', '.join(SCOPE_KINDS)}")
    starts = period_starts(today or datetime.now(UTC).date())
    c = spend_counters.c
    stmt = select(c.period, c.spent_nanos, c.requests, c.prompt_tokens, c.completion_tokens).where(
        c.scope_kind == scope_kind,
        c.scope_id == scope_id,
        tuple_(c.period, c.period_start).in_(list(starts.items())),
    )
    async with engine.connect() as conn:
        found = {row[0]: row for row in (await conn.execute(stmt)).all()}
    usage = {}
    for period in PERIODS:
        row = found.get(period)
        usage[period] = PeriodUsage(
            period=period,
            period_start=starts[period],
            spent_nanos=int(row[1]) if row else 0,
            requests=int(row[2]) if row else 0,
            prompt_tokens=int(row[3]) if row else 0,
            completion_tokens=int(row[4]) if row else 0,
        )
    return usage

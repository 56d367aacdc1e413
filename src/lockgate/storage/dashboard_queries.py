"""Ledger queries behind the dashboard: time-bucketed series, latency percentiles, recent
requests, one request's row, budgets and what they have used.

Series are grouped in SQL (one row per time bucket and group). Percentiles are computed in
Python over a bounded window (the most recent `LATENCY_WINDOW` rows of the range), the same
way on SQLite and PostgreSQL. Amounts are integer nano-dollars. Rows never carry secrets:
the ledger holds key ids, not keys.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Integer, and_, case, cast, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from lockgate.storage.schema import budgets, spend_counters, spend_ledger
from lockgate.storage.spend_rows import period_starts

_L = spend_ledger.c
SERIES_GROUPS: dict[str, Any] = {
    "model": _L.model_group,
    "deployment": _L.deployment,
    "key": _L.key_id,
    "team": _L.team_id,
}
LATENCY_WINDOW = 20_000  # rows: bounds the memory and CPU of one percentile query
RECENT_MAX = 200  # rows per page of recent requests


@dataclass(frozen=True)
class Range:
    """A half-open UTC time range [start, end), optionally narrowed to one model group."""

    start: datetime
    end: datetime
    model: str | None = None


def _naive_if_sqlite(engine: AsyncEngine, moment: datetime) -> datetime:
    # SQLite keeps timestamps as text without a zone: compare like with like.
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return utc.replace(tzinfo=None) if engine.dialect.name == "sqlite" else utc


def _where(engine: AsyncEngine, rng: Range) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = [
        _L.created_at >= _naive_if_sqlite(engine, rng.start),
        _L.created_at < _naive_if_sqlite(engine, rng.end),
        # created_at leads the (created_at, id) index; the day bounds let the day and
        # (model_group, day) indexes narrow too.
        _L.day >= rng.start.astimezone(UTC).date(),
        _L.day <= rng.end.astimezone(UTC).date(),
    ]
    if rng.model is not None:
        conditions.append(_L.model_group == rng.model)
    return and_(*conditions)


def _epoch(engine: AsyncEngine) -> ColumnElement[int]:
    """created_at as whole seconds since 1970 (UTC), in the database's own dialect."""
    if engine.dialect.name == "sqlite":
        return cast(func.strftime("%s", _L.created_at), Integer)
    return cast(func.floor(func.extract("epoch", _L.created_at)), BigInteger)


async def series(engine: AsyncEngine, rng: Range, by: str, bucket: int) -> list[dict[str, Any]]:
    """Per ``bucket``-second slot and group: requests, errors, 429s, cache hits, cost."""
    if by not in SERIES_GROUPS:
        raise ValueError(f"cannot group by {by!r}; one of: {', '.join(SERIES_GROUPS)}")
    column = SERIES_GROUPS[by]
    # Floor division of whole (positive) seconds. SQLite's CAST truncates, and its floor()
    # is missing from builds without the math functions; PostgreSQL's CAST rounds.
    if engine.dialect.name == "sqlite":
        slot = cast(_epoch(engine) / float(bucket), Integer)
    else:
        slot = cast(func.floor(_epoch(engine) / float(bucket)), BigInteger)
    stmt = (
        select(
            slot.label("slot"),
            column,
            func.count(),
            func.sum(case((_L.status == "ok", 0), else_=1)),
            func.sum(case((_L.http_status == 429, 1), else_=0)),
            func.sum(case((_L.cache_hit, 1), else_=0)),
            func.sum(_L.cost_nanos),
        )
        .where(_where(engine, rng))
        .group_by(slot, column)
        .order_by(slot, column)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [
        {
            "t": int(row[0]) * bucket,
            "group": row[1],
            "requests": int(row[2]),
            "errors": int(row[3] or 0),
            "rate_limited": int(row[4] or 0),
            "cache_hits": int(row[5] or 0),
            "cost_nanos": int(row[6] or 0),
        }
        for row in rows
    ]


def percentile(sorted_values: list[int], q: float) -> int:
    """The nearest-rank percentile ``q`` (0-100) of an ascending, non-empty list."""
    rank = max(1, -(-len(sorted_values) * q // 100))  # ceil(n * q / 100), at least 1
    return sorted_values[int(rank) - 1]


def _summary(values: list[int]) -> dict[str, int]:
    values.sort()
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
    }


async def latency(engine: AsyncEngine, rng: Range, bucket: int) -> dict[str, Any]:
    """Latency percentiles (ms) by model group, by deployment and per time bucket, over the
    range's most recent LATENCY_WINDOW requests that reached an answer (cache hits apart:
    they would hide the upstreams' latency)."""
    stmt = (
        select(_epoch(engine), _L.model_group, _L.deployment, _L.latency_ms)
        .where(_where(engine, rng), _L.status == "ok", _L.cache_hit.is_(False))
        .order_by(_L.created_at.desc())
        .limit(LATENCY_WINDOW)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    # Grouping and sorting up to LATENCY_WINDOW rows takes milliseconds: not on the loop.
    return await asyncio.to_thread(_percentiles, rows, bucket)


def _percentiles(rows: Sequence[Any], bucket: int) -> dict[str, Any]:
    by_model: dict[str, list[int]] = {}
    by_deployment: dict[tuple[str, str], list[int]] = {}
    by_slot: dict[int, list[int]] = {}
    for epoch, model, deployment, ms in rows:
        by_model.setdefault(model, []).append(ms)
        by_deployment.setdefault((model, deployment), []).append(ms)
        by_slot.setdefault(int(epoch) // bucket * bucket, []).append(ms)
    return {
        "window": len(rows),
        "models": [{"model": m, **_summary(v)} for m, v in sorted(by_model.items())],
        "deployments": [
            {"model": m, "deployment": d, **_summary(v)}
            for (m, d), v in sorted(by_deployment.items())
        ],
        "series": [{"t": t, **_summary(v)} for t, v in sorted(by_slot.items())],
    }


_RECENT_COLUMNS = (
    _L.request_id,
    _L.created_at,
    _L.key_id,
    _L.team_id,
    _L.model_group,
    _L.deployment,
    _L.status,
    _L.http_status,
    _L.latency_ms,
    _L.cost_nanos,
    _L.prompt_tokens,
    _L.completion_tokens,
    _L.cache_hit,
    _L.stream,
)


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    created = out.get("created_at")
    if isinstance(created, datetime):
        # SQLite hands back naive datetimes: they are UTC.
        utc = created if created.tzinfo else created.replace(tzinfo=UTC)
        out["created_at"] = utc.astimezone(UTC).isoformat()
    if isinstance(out.get("day"), date):
        out["day"] = out["day"].isoformat()
    return out


async def recent(
    engine: AsyncEngine, rng: Range, limit: int, offset: int, status: str | None = None
) -> dict[str, Any]:
    """A page of the range's requests, newest first, and how many there are in all."""
    where = _where(engine, rng)
    if status == "error":
        where = and_(where, _L.status != "ok")
    elif status == "ok":
        where = and_(where, _L.status == "ok")
    page = (
        select(*_RECENT_COLUMNS)
        .where(where)
        .order_by(_L.created_at.desc(), _L.id.desc())
        .limit(min(max(limit, 1), RECENT_MAX))
        .offset(max(offset, 0))
    )
    async with engine.connect() as conn:
        total = (await conn.execute(select(func.count()).where(where))).scalar_one()
        rows = (await conn.execute(page)).mappings().all()
    return {"total": int(total), "rows": [_jsonable(dict(r)) for r in rows]}


async def detail(engine: AsyncEngine, request_id: str) -> dict[str, Any] | None:
    """Every ledger column of one request, or None."""
    stmt = select(spend_ledger).where(_L.request_id == request_id)
    async with engine.connect() as conn:
        row = (await conn.execute(stmt)).mappings().first()
    return _jsonable(dict(row)) if row is not None else None


async def budgets_used(engine: AsyncEngine, today: date | None = None) -> list[dict[str, Any]]:
    """Every budget with what its scope has spent in the current period (UTC)."""
    starts = period_starts(today or datetime.now(UTC).date())
    b, c = budgets.c, spend_counters.c
    stmt = select(b.scope_kind, b.scope_id, b.period, b.limit_nanos).order_by(
        b.scope_kind, b.scope_id, b.period
    )
    spent = select(c.scope_kind, c.scope_id, c.period, c.spent_nanos).where(
        tuple_(c.period, c.period_start).in_(list(starts.items()))
    )
    async with engine.connect() as conn:
        limits = (await conn.execute(stmt.limit(500))).all()
        counters = {(r[0], r[1], r[2]): int(r[3]) for r in (await conn.execute(spent)).all()}
    out = []
    for kind, scope, period, limit_nanos in limits:
        used = counters.get((kind, scope, period), 0)
        out.append(
            {
                "scope_kind": kind,
                "scope_id": scope,
                "period": period,
                "period_start": starts[period].isoformat(),
                "limit_nanos": int(limit_nanos),
                "spent_nanos": used,
                "used": used / limit_nanos if limit_nanos else None,
            }
        )
    return out

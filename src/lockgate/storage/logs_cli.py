"""`lockgate logs tail`: the most recent requests from the request log, as a table;
with --follow, new ones as they are written (polling the database)."""

from __future__ import annotations

import asyncio
from datetime import UTC
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from lockgate.config.schema import DatabaseConfig
from lockgate.storage.database import create_engine
from lockgate.storage.request_log import COLUMNS, T

HEADER = (
    f"{'time (UTC)':<19} {'request id':<28} {'model':<18} {'deployment':<20} "
    f"{'status':<12} {'ms':>6} {'ttft':>5} {'att':>3} {'fb':<2} {'cache':<6} "
    f"{'tokens':>11} {'USD':>12}"
)


def format_row(row: dict[str, Any]) -> str:
    when = row["created_at"]
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    usd = f"{Decimal(row['cost_nanos']).scaleb(-9):.6f}"
    tokens = f"{row['prompt_tokens']}/{row['completion_tokens']}"
    ttft = "-" if row["ttft_ms"] is None else str(row["ttft_ms"])
    return (
        f"{when:%Y-%m-%d %H:%M:%S} {row['request_id'][:28]:<28} {row['model_group'][:18]:<18} "
        f"{(row['deployment'] or '-')[:20]:<20} {row['status'][:12]:<12} "
        f"{row['latency_ms']:>6} {ttft:>5} {row['attempts']:>3} "
        f"{'y' if row['fallback'] else '-':<2} {(row['cache_status'] or '-'):<6} "
        f"{tokens:>11} {usd:>12}"
    )


async def _rows(
    engine: AsyncEngine, after_id: int | None, limit: int, model: str | None
) -> list[dict[str, Any]]:
    """Rows in insertion order: the last ``limit`` ones, or every one after ``after_id``.
    Insertion order (id), not start time: a long request is written after shorter ones
    that started later, and following by time would skip it."""
    stmt = select(*COLUMNS)
    if model:
        stmt = stmt.where(T.model_group == model)
    if after_id is None:
        stmt = stmt.order_by(T.id.desc()).limit(limit)
    else:
        stmt = stmt.where(T.id > after_id).order_by(T.id).limit(1000)
    async with engine.connect() as conn:
        rows = [dict(r) for r in (await conn.execute(stmt)).mappings()]
    return rows if after_id is not None else rows[::-1]


async def tail(
    cfg: DatabaseConfig, lines: int, follow: bool, interval: float, model: str | None
) -> int:
    engine = await asyncio.to_thread(create_engine, cfg)
    try:
        print(HEADER, flush=True)
        rows = await _rows(engine, None, lines, model)
        last = max((r["id"] for r in rows), default=0)
        for row in rows:
            print(format_row(row), flush=True)
        while follow:
            await asyncio.sleep(interval)
            for row in await _rows(engine, last, lines, model):
                last = row["id"]
                print(format_row(row), flush=True)
    finally:
        await engine.dispose()
    return 0

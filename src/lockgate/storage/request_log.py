"""Reading the request log (the spend ledger's rows): filters and keyset paging.

Newest first, ordered by (created_at, id) descending; a page's cursor is the last row's
(created_at, id), so paging stays stable while new rows arrive and costs an index seek
whatever the depth (no OFFSET).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from lockgate.storage.schema import spend_ledger

MAX_LIMIT = 1000
T = spend_ledger.c
COLUMNS = [c for c in spend_ledger.columns if c.name not in ("day", "bodies")]


@dataclass(slots=True)
class Filters:
    model: str | None = None  # the model group
    status: str | None = None  # "ok" or an error kind; "error": every failure
    key: str | None = None  # the virtual key id
    since: datetime | None = None
    until: datetime | None = None


def encode_cursor(created_at: datetime, row_id: int) -> str:
    raw = orjson.dumps([_utc(created_at).isoformat(), row_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """Raises ValueError on anything that is not a cursor this module made."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        when, row_id = orjson.loads(raw)
        if not isinstance(row_id, int) or isinstance(row_id, bool):
            raise TypeError
        return datetime.fromisoformat(when), row_id
    except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise ValueError("not a valid cursor") from exc


def _utc(value: datetime) -> datetime:
    # SQLite hands datetimes back naive; they were written in UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["created_at"] = _utc(row["created_at"]).isoformat()
    if out.get("bodies") is not None:
        out["bodies"] = orjson.loads(out["bodies"])
    return out


async def page(
    engine: AsyncEngine, filters: Filters, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of rows (without bodies), newest first, and the next page's cursor."""
    stmt = select(*COLUMNS)
    if filters.model:
        stmt = stmt.where(T.model_group == filters.model)
    if filters.status == "error":
        stmt = stmt.where(T.status != "ok")
    elif filters.status:
        stmt = stmt.where(T.status == filters.status)
    if filters.key:
        stmt = stmt.where(T.key_id == filters.key)
    if filters.since:
        stmt = stmt.where(T.created_at >= filters.since)
    if filters.until:
        stmt = stmt.where(T.created_at < filters.until)
    if cursor:
        when, row_id = decode_cursor(cursor)
        stmt = stmt.where(or_(T.created_at < when, and_(T.created_at == when, T.id < row_id)))
    stmt = stmt.order_by(T.created_at.desc(), T.id.desc()).limit(limit + 1)
    async with engine.connect() as conn:
        rows = [dict(r) for r in (await conn.execute(stmt)).mappings()]
    more = len(rows) > limit
    rows = rows[:limit]
    following = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
    return [_jsonable(r) for r in rows], following


async def one(engine: AsyncEngine, request_id: str) -> dict[str, Any] | None:
    """One request's row, with its stored bodies (if any)."""
    stmt = select(*COLUMNS, T.bodies).where(T.request_id == request_id)
    async with engine.connect() as conn:
        row = (await conn.execute(stmt)).mappings().first()
    return None if row is None else _jsonable(dict(row))

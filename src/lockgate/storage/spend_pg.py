"""Ledger batches into PostgreSQL straight through asyncpg: two statements, one round trip
each, whatever the batch size.

Rows travel as one array per column and are expanded by `unnest`, so each statement is
prepared once per connection (asyncpg's statement cache) instead of being compiled by
SQLAlchemy with a growing multi-row VALUES list. Rows are inserted in request-id order and
counters upserted in key order, so two writers lock in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from lockgate.core.ledger_record import LedgerRecord
from lockgate.storage.spend_rows import (
    COUNTER_COLUMNS,
    COUNTER_KEY,
    LEDGER_COLUMNS,
    counter_deltas,
    ledger_rows,
)

_LEDGER_TYPES = (
    "text", "timestamptz", "date", "text", "text", "text", "text", "text", "text", "text",
    "text", "int8", "int8", "int8", "int8", "int8", "int8", "bool", "bool", "bool", "bool",
    "bool", "int4", "text", "int4", "int4", "bool", "bool", "text", "int4", "text", "text",
)  # fmt: skip
_COUNTER_TYPES = ("text", "text", "text", "date", "int8", "int8", "int8", "int8")


# Statements are built once from constant column names: no value is ever formatted in.
def _unnest(columns: Sequence[str], types: Sequence[str]) -> str:
    arrays = ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, 1))
    return f"SELECT * FROM unnest({arrays}) AS t({', '.join(columns)})"  # noqa: S608


_INSERT = (
    f"INSERT INTO spend_ledger ({', '.join(LEDGER_COLUMNS)}) "
    f"{_unnest(LEDGER_COLUMNS, _LEDGER_TYPES)} ORDER BY request_id "
    "ON CONFLICT (request_id) DO NOTHING RETURNING request_id"
)
_UPSERT = (
    f"INSERT INTO spend_counters ({', '.join(COUNTER_COLUMNS)}) "
    f"{_unnest(COUNTER_COLUMNS, _COUNTER_TYPES)} ORDER BY {', '.join(COUNTER_KEY)} "
    f"ON CONFLICT ({', '.join(COUNTER_KEY)}) DO UPDATE SET "
    + ", ".join(f"{c} = spend_counters.{c} + excluded.{c}" for c in COUNTER_COLUMNS[4:])
)


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


async def write_pg(engine: AsyncEngine, ordered: Sequence[LedgerRecord]) -> int:
    """Insert and count ``ordered`` (unique ids) in one transaction; returns how many were new."""
    rows = ledger_rows(ordered, sqlite=False)
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        pg: Any = raw.driver_connection  # the asyncpg connection SQLAlchemy's pool holds
        async with pg.transaction():
            result = await pg.fetch(_INSERT, *_columns(rows, len(LEDGER_COLUMNS)))
            inserted = {r[0] for r in result}
            if not inserted:
                return 0
            new = []
            for record, row in zip(ordered, rows, strict=True):
                if row[0] in inserted:
                    inserted.discard(row[0])  # two ids equal once cut count once
                    new.append(record)
            deltas = counter_deltas(new, sqlite=False)
            await pg.execute(_UPSERT, *_columns(deltas, len(COUNTER_COLUMNS)))
    return len(new)

"""The spend ledger's write path: ledger rows and per-scope counters in one transaction.

Rows are inserted with ON CONFLICT (request_id) DO NOTHING, so a record written twice (a
replay of the spool, a retry after a lost commit, two replicas) is stored once; counters
are incremented only for the rows that were actually inserted, with atomic upserts
(`spent = spent + excluded.spent`) so that concurrent writers never lose an increment.
Rows and counters are always locked in the same order (request id, then counter key), so
two writers cannot deadlock each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import String, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from lockgate.core.accounting import LedgerRecord
from lockgate.storage.schema import spend_counters, spend_ledger

EPOCH = date(1970, 1, 1)


def period_starts(day: date) -> dict[str, date]:
    """The start of each budget period ``day`` falls in (UTC; weeks start on Monday)."""
    return {
        "daily": day,
        "weekly": day - timedelta(days=day.weekday()),
        "monthly": day.replace(day=1),
        "none": EPOCH,
    }


def scopes(record: LedgerRecord) -> list[tuple[str, str]]:
    out = [("key", record.key_id)]
    if record.user_id:
        out.append(("user", record.user_id))
    if record.team_id:
        out.append(("team", record.team_id))
    return out


# A value longer than its column would fail the whole batch on PostgreSQL, again at every
# retry: cut it to fit instead (ids and names come from config and clients).
_LENGTHS = {
    c.name: c.type.length
    for c in spend_ledger.columns
    if isinstance(c.type, String) and c.type.length is not None
}


def row(record: LedgerRecord) -> dict[str, Any]:
    data = record.to_dict()
    for name, length in _LENGTHS.items():
        value = data[name]
        if value is not None and len(value) > length:
            data[name] = value[:length]
    started = datetime.fromtimestamp(data.pop("started_at"), UTC)
    data["created_at"] = started
    data["day"] = started.date()
    return data


@dataclass
class Counter:
    spent_nanos: int = 0
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


def counter_deltas(
    records: Iterable[LedgerRecord],
) -> list[dict[str, Any]]:
    """What ``records`` add to each (scope, period) counter, in lock order."""
    deltas: dict[tuple[str, str, str, date], Counter] = {}
    for record in records:
        day = datetime.fromtimestamp(record.started_at, UTC).date()
        starts = period_starts(day)
        for kind, scope_id in scopes(record):
            for period, start in starts.items():
                counter = deltas.setdefault((kind, scope_id, period, start), Counter())
                counter.spent_nanos += record.cost_nanos
                counter.requests += 1
                counter.prompt_tokens += record.prompt_tokens
                counter.completion_tokens += record.completion_tokens
    return [
        {
            "scope_kind": kind,
            "scope_id": scope_id,
            "period": period,
            "period_start": start,
            "spent_nanos": c.spent_nanos,
            "requests": c.requests,
            "prompt_tokens": c.prompt_tokens,
            "completion_tokens": c.completion_tokens,
        }
        for (kind, scope_id, period, start), c in sorted(deltas.items())
    ]


def _insert(conn: AsyncConnection, table: Table) -> Any:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"no upsert for {dialect}")


class SpendStore:
    """Writes batches of ledger records; one instance per engine."""

    def __init__(self, engine: AsyncEngine | None = None) -> None:
        self._engine = engine

    @property
    def bound(self) -> bool:
        return self._engine is not None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("the database has not been started")
        return self._engine

    @engine.setter
    def engine(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def write(self, records: Sequence[LedgerRecord]) -> int:
        """Insert ``records`` and count them, at most once each; returns how many were new."""
        unique = {r.request_id: r for r in reversed(records)}  # the first of a duplicate wins
        ordered = [unique[k] for k in sorted(unique)]
        if not ordered:
            return 0
        async with self.engine.begin() as conn:
            return await self._write(conn, ordered)

    async def _write(self, conn: AsyncConnection, ordered: list[LedgerRecord]) -> int:
        # Both statements are executed with a list of parameter sets: SQLAlchemy compiles
        # each once (cached) and sends the rows as multi-row VALUES, in the given order.
        insert = _insert(conn, spend_ledger)
        stmt = insert.on_conflict_do_nothing(index_elements=["request_id"]).returning(
            spend_ledger.c.request_id
        )
        inserted = set((await conn.execute(stmt, [row(r) for r in ordered])).scalars())
        if not inserted:
            return 0
        deltas = counter_deltas(r for r in ordered if r.request_id in inserted)
        upsert = _insert(conn, spend_counters)
        excluded = upsert.excluded
        counters = spend_counters.c
        await conn.execute(
            upsert.on_conflict_do_update(
                index_elements=["scope_kind", "scope_id", "period", "period_start"],
                set_={
                    "spent_nanos": counters.spent_nanos + excluded.spent_nanos,
                    "requests": counters.requests + excluded.requests,
                    "prompt_tokens": counters.prompt_tokens + excluded.prompt_tokens,
                    "completion_tokens": counters.completion_tokens + excluded.completion_tokens,
                },
            ),
            deltas,
        )
        return len(inserted)

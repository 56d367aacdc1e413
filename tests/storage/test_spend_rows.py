"""The driver-level write paths (sqlite3, asyncpg) store what SQLAlchemy reads back."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import select

from lockgate.storage.reports import current_usage
from lockgate.storage.schema import spend_counters, spend_ledger
from lockgate.storage.spend import SpendStore
from tests.storage.records import MONDAY, make_record


async def test_rows_read_back_through_sqlalchemy(store: SpendStore) -> None:
    record = make_record(
        "req-1", started_at=MONDAY + 0.25, user_id="u1", priced=False, stream=True, cost_nanos=7
    )
    assert await store.write([record]) == 1
    async with store.engine.connect() as conn:
        row = (await conn.execute(select(spend_ledger))).mappings().one()
    created = row["created_at"]
    if created.tzinfo is None:  # SQLite keeps no offset: the stored time is UTC
        created = created.replace(tzinfo=UTC)
    assert created == datetime.fromtimestamp(MONDAY + 0.25, UTC)
    assert row["day"] == date(2026, 3, 2)
    assert (row["priced"], row["stream"], row["cache_hit"]) == (False, True, False)
    assert (row["user_id"], row["team_id"], row["cost_nanos"]) == ("u1", None, 7)


async def test_ids_equal_once_cut_to_the_column_are_stored_and_counted_once(
    store: SpendStore,
) -> None:
    prefix = "r" * 160
    records = [make_record(prefix + "-a"), make_record(prefix + "-b")]
    assert await store.write(records) == 1
    assert await store.write([make_record(prefix + "-c")]) == 0
    usage = await current_usage(store.engine, "key", "key-a", date(2026, 3, 2))
    assert usage["none"].requests == 1
    async with store.engine.connect() as conn:
        counters = (await conn.execute(select(spend_counters.c.period))).scalars().all()
    assert sorted(counters) == ["daily", "monthly", "none", "weekly"]

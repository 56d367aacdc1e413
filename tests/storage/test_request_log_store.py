"""The request log's reads and retention on SQLite and PostgreSQL: filters, keyset paging
that neither skips nor repeats rows, and batched deletion by age and by row count."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from lockgate.config.schema import RequestLogConfig
from lockgate.core.tasks import TaskTracker
from lockgate.storage import request_log
from lockgate.storage.request_log import Filters, decode_cursor
from lockgate.storage.retention import Retention
from lockgate.storage.schema import spend_ledger
from lockgate.storage.spend import SpendStore
from tests.storage.records import make_record

DAY = 86_400.0


async def _count(store: SpendStore) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(spend_ledger))).scalar())


async def test_filters_and_keyset_paging(store: SpendStore) -> None:
    now = time.time()
    records = [
        make_record(
            f"r{i:02d}",
            started_at=now - 100 + (i // 2),  # pairs share a start time: ties broken by id
            key_id="key-a" if i % 3 else "key-b",
            status="ok" if i % 4 else "upstream",
            fallback=i == 5,
            cache_status="hit" if i == 6 else "miss",
            ttft_ms=40 if i == 7 else None,
            error_type=None if i % 4 else "UpstreamError",
        )
        for i in range(23)
    ]
    await store.write(records)

    seen: list[str] = []
    cursor = None
    while True:
        rows, cursor = await request_log.page(store.engine, Filters(), 5, cursor)
        seen += [r["request_id"] for r in rows]
        if cursor is None:
            break
    assert len(seen) == 23 and len(set(seen)) == 23
    times = [r.started_at for r in sorted(records, key=lambda r: r.request_id)]
    assert times == sorted(times)
    assert seen[0] in ("r21", "r22") and seen[-1] in ("r00", "r01")

    errors, _ = await request_log.page(store.engine, Filters(status="error"), 100, None)
    assert {r["request_id"] for r in errors} == {f"r{i:02d}" for i in range(0, 23, 4)}
    assert all(r["error_type"] == "UpstreamError" for r in errors)
    by_key, _ = await request_log.page(store.engine, Filters(key="key-b"), 100, None)
    assert {r["request_id"] for r in by_key} == {f"r{i:02d}" for i in range(0, 23, 3)}
    since = datetime.fromtimestamp(now - 100 + 10, UTC)
    late, _ = await request_log.page(store.engine, Filters(since=since), 100, None)
    assert {r["request_id"] for r in late} == {f"r{i:02d}" for i in range(20, 23)}

    row = await request_log.one(store.engine, "r07")
    assert row is not None and row["ttft_ms"] == 40 and row["bodies"] is None
    assert (await request_log.one(store.engine, "r05") or {})["fallback"] is True
    assert await request_log.one(store.engine, "nope") is None
    with pytest.raises(ValueError, match="not a valid cursor"):
        decode_cursor("not-a-cursor")


async def test_retention_by_age_and_by_rows_in_batches(store: SpendStore) -> None:
    now = time.time()
    old = [make_record(f"old{i}", started_at=now - 10 * DAY - i) for i in range(7)]
    fresh = [make_record(f"new{i}", started_at=now - i) for i in range(6)]
    await store.write(old + fresh)
    tasks = TaskTracker()
    cfg = RequestLogConfig(retention_days=7, retention_batch=2)
    assert await Retention(cfg, store.engine, tasks).sweep() == 7
    assert await _count(store) == 6

    cfg = RequestLogConfig(max_rows=4, retention_batch=3)
    assert await Retention(cfg, store.engine, tasks).sweep() == 2
    rows, _ = await request_log.page(store.engine, Filters(), 100, None)
    assert [r["request_id"] for r in rows] == ["new0", "new1", "new2", "new3"]
    assert await Retention(cfg, store.engine, tasks).sweep() == 0

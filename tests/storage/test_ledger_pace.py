"""The ledger writer's pace: after a batch, the records that arrived during its write are
written at once when they make PACE_BATCH, else FLUSH_PACE later together (a busy
writer had written them back to back, a few records a batch); with nothing pending, or
the database down, it waits the flush interval, or until WAKE_BATCH records come. And a
burst still goes out at once, in full batches, on a real SQLite database."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lockgate.config.schema import DatabaseConfig
from lockgate.core.tasks import TaskTracker
from lockgate.storage.ledger import FLUSH_PACE, PACE_BATCH, WAKE_BATCH
from lockgate.storage.service import Database
from tests.conftest import wait_until
from tests.storage.records import make_record


async def test_the_wait_after_a_batch_follows_what_is_pending(tmp_path: Path) -> None:
    cfg = DatabaseConfig(url=f"sqlite:///{tmp_path}/l.db", spool_path=None, flush_interval=30)
    db = Database(cfg, TaskTracker())
    ledger = db.ledger
    assert ledger._next_wait() == 30  # nothing pending
    ledger._pending.extend(make_record(f"r{i}") for i in range(PACE_BATCH - 1))
    assert ledger._next_wait() == FLUSH_PACE  # a few: gather more first
    ledger._pending.append(make_record("one-more"))
    assert ledger._next_wait() == 0  # enough for a batch of their own: at once
    ledger.up = False
    assert ledger._next_wait() == 30  # the database is down: its retry timer decides


async def test_a_burst_goes_out_at_once_in_full_batches(tmp_path: Path) -> None:
    cfg = DatabaseConfig(url=f"sqlite:///{tmp_path}/l.db", spool_path=None, flush_interval=30)
    db = Database(cfg, TaskTracker())
    await db.start()
    try:
        for i in range(1200):
            db.ledger.record(make_record(f"req-{i:04d}"))
        await wait_until(lambda: db.ledger.counts["written"] == 1200, seconds=10)
        assert db.ledger.batches == 3  # 500, 500 and 200, without waiting 30 s
    finally:
        await db.close(grace=10)
    assert db.ledger.counts == {"written": 1200, "duplicate": 0, "spooled": 0, "dropped": 0}


async def test_an_idle_writer_writes_once_wake_batch_records_came(tmp_path: Path) -> None:
    """Not hundreds at a time once the flush interval is up: a burst of the writer
    process's work on the load core held up the upstream (the c1 p99)."""
    cfg = DatabaseConfig(url=f"sqlite:///{tmp_path}/l.db", spool_path=None, flush_interval=30)
    db = Database(cfg, TaskTracker())
    await db.start()
    try:
        for i in range(WAKE_BATCH - 1):
            db.ledger.record(make_record(f"req-{i:04d}"))
        await asyncio.sleep(0.3)
        assert db.ledger.counts["written"] == 0  # a few wait for more (or 30 s)
        db.ledger.record(make_record("req-last"))
        await wait_until(lambda: db.ledger.counts["written"] == WAKE_BATCH, seconds=10)
        assert db.ledger.batches == 1
    finally:
        await db.close(grace=10)

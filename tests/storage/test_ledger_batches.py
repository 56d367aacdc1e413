"""The ledger writer's batches on a real SQLite database: a full batch is written at once,
the records that arrive meanwhile wait for the next full batch (or the flush interval)
instead of going out as a small batch of their own; close writes what is left."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import func, select

from lockgate.config.schema import DatabaseConfig
from lockgate.core.tasks import TaskTracker
from lockgate.storage.schema import spend_ledger
from lockgate.storage.service import Database
from tests.conftest import wait_until
from tests.storage.records import make_record


async def _rows(db: Database) -> int:
    async with db.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(spend_ledger))).scalar())


def _config(tmp_path: Path, flush_interval: float) -> DatabaseConfig:
    return DatabaseConfig(
        url=f"sqlite:///{tmp_path}/ledger.db",
        spool_path=None,
        batch_size=10,
        flush_interval=flush_interval,
    )


async def test_only_full_batches_go_out_before_the_flush_interval(tmp_path: Path) -> None:
    cfg = _config(tmp_path, flush_interval=30)
    db = Database(cfg, TaskTracker())
    await db.start()
    try:
        for i in range(25):
            db.ledger.record(make_record(f"req-{i:03d}"))
        await wait_until(lambda: db.ledger.counts["written"] == 20, seconds=10)
        await asyncio.sleep(0.3)  # the 5 left wait for a full batch or the interval
        assert (db.ledger.counts["written"], db.ledger.pending) == (20, 5)
        assert await _rows(db) == 20
        for i in range(25, 30):
            db.ledger.record(make_record(f"req-{i:03d}"))
        await wait_until(lambda: db.ledger.counts["written"] == 30, seconds=10)
        assert db.ledger.pending == 0
        db.ledger.record(make_record("req-last"))
    finally:
        await db.close(grace=10)
    assert db.ledger.counts == {"written": 31, "duplicate": 0, "spooled": 0, "dropped": 0}
    reopened = Database(cfg, TaskTracker())
    await reopened.start()
    try:
        assert await _rows(reopened) == 31
    finally:
        await reopened.close(grace=10)


async def test_a_partial_batch_goes_out_at_the_flush_interval(tmp_path: Path) -> None:
    db = Database(_config(tmp_path, flush_interval=0.2), TaskTracker())
    await db.start()
    try:
        for i in range(13):
            db.ledger.record(make_record(f"req-{i:03d}"))
        await wait_until(lambda: db.ledger.counts["written"] == 13, seconds=10)
        assert await _rows(db) == 13
    finally:
        await db.close(grace=10)

"""The ledger writer through a real database outage: PostgreSQL behind a TCP proxy that is
cut and restored. Records buffer in memory, spill to the spool, drop (counted) when both
are full, and reach the database once it is back; shutdown flushes or spools."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import func, select

from lockgate.config.schema import DatabaseConfig
from lockgate.core.tasks import TaskTracker
from lockgate.storage.schema import spend_counters, spend_ledger
from lockgate.storage.service import Database
from tests.conftest import wait_until
from tests.storage.records import make_record
from tests.storage.tcp_proxy import TcpProxy


@pytest.fixture
async def proxied(make_pg_database: Any) -> AsyncIterator[tuple[TcpProxy, str]]:
    """A fresh PostgreSQL database, reached through a proxy the test can cut."""
    url = await make_pg_database()
    parts = urlsplit(url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    port = await proxy.start()
    yield proxy, urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))
    await proxy.cut()


def _config(url: str, tmp_path: Path, **options: Any) -> DatabaseConfig:
    values = {
        "url": url,
        "batch_size": 20,
        "flush_interval": 0.02,
        "buffer_records": 100,
        "spool_path": str(tmp_path / "ledger.spool"),
        "connect_timeout": 2,
        **options,
    }
    return DatabaseConfig.model_validate(values)


async def _rows(db: Database) -> tuple[int, int]:
    """Ledger rows, and the key's lifetime request counter."""
    async with db.engine.connect() as conn:
        rows = (await conn.execute(select(func.count()).select_from(spend_ledger))).scalar()
        counted = (
            await conn.execute(
                select(func.sum(spend_counters.c.requests)).where(
                    spend_counters.c.period == "none", spend_counters.c.scope_kind == "key"
                )
            )
        ).scalar()
    return int(rows or 0), int(counted or 0)


async def test_outage_buffers_spools_and_recovers(
    proxied: tuple[TcpProxy, str], tmp_path: Path
) -> None:
    proxy, url = proxied
    db = Database(_config(url, tmp_path), TaskTracker())
    await db.start()
    for i in range(10):
        db.ledger.record(make_record(f"before-{i}"))
    await wait_until(lambda: db.ledger.counts["written"] == 10)

    await proxy.cut()
    slowest = 0.0
    for i in range(300):
        started = time.perf_counter()
        db.ledger.record(make_record(f"during-{i}"))
        slowest = max(slowest, time.perf_counter() - started)
        if i % 20 == 0:
            await asyncio.sleep(0.01)
    # record() is synchronous, so it cannot wait for the database; the bound only catches
    # a hand-off that does real work (a write, a connect) on a loaded machine.
    assert slowest < 0.5
    await wait_until(lambda: not db.ledger.up and db.ledger.spool is not None
                     and db.ledger.spool.size > 0, 10)  # fmt: skip
    assert db.ledger.pending <= 100
    assert db.ledger.counts["dropped"] == 0
    assert db.ledger.counts["spooled"] > 0

    await proxy.restore()
    await wait_until(lambda: db.ledger.counts["written"] == 310 and db.ledger.up, 20)
    assert db.ledger.spool is not None and db.ledger.spool.size == 0
    assert not await asyncio.to_thread((tmp_path / "ledger.spool").exists)
    assert await _rows(db) == (310, 310)
    await db.close(grace=5)


async def test_buffer_and_spool_full_drops_and_counts(
    proxied: tuple[TcpProxy, str], tmp_path: Path
) -> None:
    proxy, url = proxied
    db = Database(_config(url, tmp_path, buffer_records=10, spool_max_bytes=3000), TaskTracker())
    await db.start()
    await proxy.cut()
    for i in range(100):
        db.ledger.record(make_record(f"r-{i}"))
        await asyncio.sleep(0.002)
    # The first write fails once the writer process has started and tried to connect.
    await wait_until(lambda: db.ledger.counts["dropped"] > 0 and not db.ledger.up, 10)
    registry = CollectorRegistry()
    registry.register(db.ledger)
    metrics = generate_latest(registry).decode()
    dropped = db.ledger.counts["dropped"]
    assert f'lockgate_ledger_records_total{{outcome="dropped"}} {dropped}.0' in metrics
    assert "lockgate_database_up 0.0" in metrics

    await proxy.restore()
    await wait_until(lambda: db.ledger.pending == 0 and db.ledger.up, 20)
    await wait_until(lambda: db.ledger.spool is not None and db.ledger.spool.size == 0, 20)
    written, dropped = db.ledger.counts["written"], db.ledger.counts["dropped"]
    assert written + dropped == 100
    assert await _rows(db) == (written, written)
    await db.close(grace=5)


async def test_shutdown_flushes_what_is_buffered(
    proxied: tuple[TcpProxy, str], tmp_path: Path
) -> None:
    _, url = proxied
    # Batches would wait a minute: only the final flush at shutdown can write them.
    db = Database(_config(url, tmp_path, flush_interval=60, batch_size=1000), TaskTracker())
    await db.start()
    for i in range(50):
        db.ledger.record(make_record(f"r-{i}"))
    await asyncio.sleep(0.05)
    assert db.ledger.counts["written"] == 0
    await db.ledger.close(grace=10)
    assert db.ledger.counts["written"] == 50
    assert await _rows(db) == (50, 50)
    await db.close(grace=1)


async def test_shutdown_while_down_spools_and_the_next_start_replays(
    proxied: tuple[TcpProxy, str], tmp_path: Path
) -> None:
    proxy, url = proxied
    await proxy.cut()  # down from the start: start-up cannot even migrate
    first = Database(_config(url, tmp_path), TaskTracker())
    await first.start()
    for i in range(40):
        first.ledger.record(make_record(f"r-{i}"))
    await first.close(grace=5)
    assert first.ledger.counts["spooled"] == 40
    assert await asyncio.to_thread((tmp_path / "ledger.spool").exists)

    await proxy.restore()
    second = Database(_config(url, tmp_path), TaskTracker())
    await second.start()
    second.ledger.record(make_record("r-0"))  # a duplicate of a spooled record
    second.ledger.record(make_record("new"))
    await wait_until(lambda: second.ledger.counts["written"] == 41, 20)
    assert second.ledger.counts["duplicate"] == 1
    assert await _rows(second) == (41, 41)
    assert not await asyncio.to_thread((tmp_path / "ledger.spool").exists)
    await second.close(grace=5)


async def test_a_database_down_at_start_up_is_migrated_when_it_returns(
    proxied: tuple[TcpProxy, str], tmp_path: Path
) -> None:
    proxy, url = proxied
    await proxy.cut()
    db = Database(_config(url, tmp_path), TaskTracker())
    await db.start()
    db.ledger.record(make_record("r-1"))
    await asyncio.sleep(0.1)
    await proxy.restore()
    await wait_until(lambda: db.ledger.counts["written"] == 1, 20)
    assert await _rows(db) == (1, 1)
    await db.close(grace=5)


async def test_an_unreachable_database_is_logged_without_its_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = TcpProxy("127.0.0.1", 9)
    port = await proxy.start()
    await proxy.cut()  # a port nothing listens on
    url = f"postgresql://lockgate:hunter2-secret@127.0.0.1:{port}/lockgate"
    db = Database(_config(url, tmp_path), TaskTracker())
    await db.start()
    db.ledger.record(make_record("r"))
    await wait_until(lambda: not db.ledger.up, 10)
    await db.close(grace=5)
    assert "lockgate:***@127.0.0.1" in caplog.text
    assert "hunter2-secret" not in caplog.text


async def test_sqlite_whose_directory_is_gone_recovers_when_it_is_back(tmp_path: Path) -> None:
    """SQLite's outage: the database's directory is missing (an unmounted volume)."""
    volume = tmp_path / "volume"
    cfg = _config(f"sqlite:///{volume}/lockgate.db", tmp_path)
    db = Database(cfg, TaskTracker())
    await db.start()  # cannot even migrate: serves anyway
    for i in range(30):
        db.ledger.record(make_record(f"r-{i}"))
    await wait_until(lambda: not db.ledger.up, 10)
    assert db.ledger.counts["written"] == 0

    await asyncio.to_thread(volume.mkdir)
    await wait_until(lambda: db.ledger.counts["written"] == 30 and db.ledger.up, 20)
    assert await _rows(db) == (30, 30)
    await db.close(grace=5)


async def test_new_records_are_written_while_a_long_spool_is_replayed(
    proxied: tuple[TcpProxy, str], tmp_path: Path
) -> None:
    proxy, url = proxied
    await proxy.cut()
    first = Database(_config(url, tmp_path, buffer_records=5000), TaskTracker())
    await first.start()
    for i in range(3000):
        first.ledger.record(make_record(f"old-{i:04d}"))
    await first.close(grace=5)
    assert first.ledger.counts["spooled"] == 3000

    await proxy.restore()
    second = Database(_config(url, tmp_path, buffer_records=60), TaskTracker())
    await second.start()
    await wait_until(lambda: second.ledger.counts["written"] > 0, 10)  # replay under way
    for i in range(200):
        second.ledger.record(make_record(f"new-{i}"))
        await asyncio.sleep(0.001)
    await wait_until(lambda: second.ledger.counts["written"] == 3200, 30)
    assert second.ledger.counts["dropped"] == 0
    assert await _rows(second) == (3200, 3200)
    await second.close(grace=5)


async def test_a_stalled_database_gets_the_spool_not_drops(
    proxied: tuple[TcpProxy, str], tmp_path: Path
) -> None:
    """Up but not keeping up: a write hangs on a lock another session holds, while twice
    the buffer's worth of records arrives. They go to the spool, none is dropped, and all
    reach the database once the lock is gone."""
    _, url = proxied
    db = Database(_config(url, tmp_path), TaskTracker())
    await db.start()
    db.ledger.record(make_record("first"))
    await wait_until(lambda: db.ledger.counts["written"] == 1)
    async with db.engine.connect() as blocker:
        await blocker.exec_driver_sql("LOCK TABLE spend_ledger IN EXCLUSIVE MODE")
        for i in range(200):  # buffer_records is 100
            db.ledger.record(make_record(f"r-{i}"))
            if i % 20 == 0:
                await asyncio.sleep(0.01)
        await wait_until(lambda: db.ledger.counts["spooled"] >= 100)
        assert db.ledger.up  # nothing failed: the database is slow, not down
        assert db.ledger.counts["written"] == 1
        assert db.ledger.pending <= 100
        await blocker.rollback()
    await wait_until(lambda: db.ledger.counts["written"] == 201, 20)
    assert db.ledger.counts["dropped"] == 0
    assert await _rows(db) == (201, 201)
    await wait_until(lambda: db.ledger.spool is not None and db.ledger.spool.size == 0)
    await db.close(grace=5)

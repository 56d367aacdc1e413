"""The driver-level write paths (sqlite3, asyncpg) store what SQLAlchemy reads back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from lockgate.config.schema import DatabaseConfig
from lockgate.storage.database import create_engine
from lockgate.storage.migrate import upgrade_async
from lockgate.storage.reports import current_usage
from lockgate.storage.schema import spend_counters, spend_ledger
from lockgate.storage.spend import SpendStore
from lockgate.storage.spend_process import LedgerChildError
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


async def test_a_batch_holding_stored_ids_adds_only_its_new_rows_to_the_counters(
    store: SpendStore,
) -> None:
    """The usual batch (all new) and one holding ids already stored (a replayed spool),
    which PostgreSQL's COPY refuses and the writer then writes row by row."""
    assert await store.write([make_record("a", cost_nanos=1), make_record("b", cost_nanos=2)]) == 2
    again = [make_record(rid, cost_nanos=cost) for rid, cost in (("b", 2), ("c", 4), ("d", 8))]
    assert await store.write(again) == 2
    assert await store.write([make_record("e", cost_nanos=16)]) == 1  # all new again
    usage = await current_usage(store.engine, "key", "key-a", date(2026, 3, 2))
    assert (usage["none"].requests, usage["daily"].spent_nanos) == (5, 31)
    async with store.engine.connect() as conn:
        ids = (await conn.execute(select(spend_ledger.c.request_id))).scalars().all()
    assert sorted(ids) == ["a", "b", "c", "d", "e"]


def test_cut_lengths_are_the_schemas() -> None:
    """spend_rows keeps the column lengths as literals (the ledger's child process does not
    load SQLAlchemy); they must be schema.py's."""
    from sqlalchemy import String

    from lockgate.storage.spend_rows import LENGTHS

    assert {
        f"{table.name}.{c.name}": c.type.length
        for table in (spend_ledger, spend_counters)
        for c in table.columns
        if isinstance(c.type, String) and c.type.length is not None
    } == LENGTHS


async def test_a_sqlite_writer_process_that_dies_is_replaced_and_nothing_counts_twice(
    tmp_path: Path,
) -> None:
    async with _sqlite_store(tmp_path / "lockgate.db") as (store, engine):
        assert await store.write([make_record("req-1"), make_record("req-2")]) == 2
        first = store.writer_pid()
        assert first is not None
        os.kill(first, signal.SIGKILL)
        await asyncio.to_thread(_wait_gone, first)
        # The same batch again (as after a lost answer) plus a new record: one is new. When
        # the event loop has not yet seen the child exit, the first attempt goes to the
        # dead pipe and fails; the ledger writer retries a failed batch, and so does this.
        batch = [make_record("req-2"), make_record("req-3")]
        try:
            inserted = await store.write(batch)
        except LedgerChildError:
            inserted = await store.write(batch)
        assert inserted == 1
        assert store.writer_pid() not in (None, first)
        assert await _requests(engine) == 3
    assert store.writer_pid() is None


@contextlib.asynccontextmanager
async def _sqlite_store(path: Path) -> AsyncIterator[tuple[SpendStore, AsyncEngine]]:
    cfg = DatabaseConfig(url=f"sqlite:///{path}", spool_path=None)
    await upgrade_async(cfg)
    engine = await asyncio.to_thread(create_engine, cfg)
    store = SpendStore(engine)
    try:
        yield store, engine
    finally:
        await store.close()
        await engine.dispose()


async def _requests(engine: AsyncEngine) -> int:
    """The requests counted for make_record's key on its day."""
    usage = await current_usage(engine, "key", "key-a", date(2026, 3, 2))
    return int(usage["none"].requests)


async def test_a_write_cut_short_ends_the_writer_and_the_batch_is_written_once_later(
    tmp_path: Path,
) -> None:
    """A batch whose write times out (the file locked by another writer): the writer
    process is ended, not asked again (its late answer would be taken for the next
    batch's), and the batch written again later is counted once."""
    path = tmp_path / "lockgate.db"
    async with _sqlite_store(path) as (store, engine):
        assert await store.write([make_record("req-1")]) == 1
        first = store.writer_pid()
        blocker = await asyncio.to_thread(
            sqlite3.connect, path, isolation_level=None, check_same_thread=False
        )
        await asyncio.to_thread(blocker.execute, "BEGIN IMMEDIATE")  # the writer waits
        try:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(store.write([make_record("req-2")]), 0.5)
            assert store.writer_pid() is None
        finally:
            await asyncio.to_thread(blocker.execute, "ROLLBACK")
            await asyncio.to_thread(blocker.close)
        assert await store.write([make_record("req-2"), make_record("req-3")]) == 2
        assert store.writer_pid() not in (None, first)
        assert await _requests(engine) == 3


async def test_the_sqlite_writer_process_runs_on_the_configured_cpus(tmp_path: Path) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    wanted = [cpus[-1]]  # one CPU of those this test may use
    cfg = DatabaseConfig(
        url=f"sqlite:///{tmp_path}/lockgate.db", spool_path=None, writer_cpus=wanted
    )
    await upgrade_async(cfg)
    engine = await asyncio.to_thread(create_engine, cfg)
    store = SpendStore(engine, writer_cpus=cfg.writer_cpus)
    try:
        assert await store.write([make_record("req-1")]) == 1
        pid = store.writer_pid()
        assert pid is not None
        assert os.sched_getaffinity(pid) == set(wanted)
        assert os.sched_getaffinity(0) == set(cpus)  # the gateway's own is untouched
    finally:
        await store.close()
        await engine.dispose()


def _wait_gone(pid: int) -> None:
    """Until the process has exited (a zombie until its parent polls it, or reaped)."""
    for _ in range(500):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return
        if stat[stat.rindex(")") + 2] in "ZX":
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} still running")


async def test_a_postgres_writer_process_gets_its_url_on_stdin_not_argv(
    make_pg_database: Callable[[], Any],
) -> None:
    """The ledger's writer process is told its database where `ps` cannot read it: the
    password travels on its stdin. (The test server trusts local connections, so the
    password is sent and not checked.)"""
    plain = make_url(await make_pg_database())
    url = plain.set(password="s3cret-pw").render_as_string(hide_password=False)
    cfg = DatabaseConfig(url=url, spool_path=None)
    await upgrade_async(cfg)
    engine = await asyncio.to_thread(create_engine, cfg)
    store = SpendStore(engine, url=url)
    try:
        assert await store.write([make_record("req-1"), make_record("req-2")]) == 2
        pid = store.writer_pid()
        assert pid is not None
        cmdline = await asyncio.to_thread(Path(f"/proc/{pid}/cmdline").read_bytes)
        assert b"lockgate.storage.spend_child" in cmdline
        assert b"s3cret-pw" not in cmdline and str(plain.database).encode() not in cmdline
        usage = await current_usage(engine, "key", "key-a", date(2026, 3, 2))
        assert usage["none"].requests == 2
    finally:
        await store.close()
        await engine.dispose()

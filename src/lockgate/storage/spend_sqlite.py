"""Ledger batches into a SQLite file with the plain sqlite3 module, in one worker thread.

SQLAlchemy over aiosqlite costs a statement compilation per batch, per-row parameter
processing and a thread hop per call; a batch here is one function run in the ledger's own
thread (its connection lives and dies there): BEGIN IMMEDIATE takes the write lock, so the
ids found already stored stay true until COMMIT, and the rest are all inserted.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from lockgate.core.accounting import LedgerRecord
from lockgate.storage.spend_rows import (
    COUNTER_COLUMNS,
    COUNTER_KEY,
    LEDGER_COLUMNS,
    counter_deltas,
    ledger_rows,
)

# Statements are built from constant column names: no value is ever formatted in.
_INSERT = (
    f"INSERT INTO spend_ledger ({', '.join(LEDGER_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(LEDGER_COLUMNS))}) ON CONFLICT (request_id) DO NOTHING"
)
_SUMS = COUNTER_COLUMNS[4:]
_UPSERT = (
    f"INSERT INTO spend_counters ({', '.join(COUNTER_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(COUNTER_COLUMNS))}) "
    f"ON CONFLICT ({', '.join(COUNTER_KEY)}) DO UPDATE SET "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in _SUMS)
)
_CHUNK = 500  # ids per look-up: well under SQLite's limit on bound parameters


class SqliteSpendWriter:
    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="lockgate-ledger")
        self._conn: sqlite3.Connection | None = None

    async def write(self, ordered: Sequence[LedgerRecord]) -> int:
        """Insert and count ``ordered`` (unique ids, in lock order); returns how many were new."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._write, ordered)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._disconnect)
        self._thread.shutdown(wait=False)

    # -- in the worker thread -------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, cached_statements=64
        )
        try:
            # WAL: readers (reports) do not block the writer; as SQLAlchemy's connections.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            conn.close()
            raise
        return conn

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _write(self, ordered: Sequence[LedgerRecord]) -> int:
        conn = self._conn
        if conn is None:
            conn = self._conn = self._connect()
        rows = ledger_rows(ordered, sqlite=True)
        try:
            conn.execute("BEGIN IMMEDIATE")
            stored = self._stored(conn, [row[0] for row in rows])
            new: list[LedgerRecord] = []
            fresh = []
            for record, row in zip(ordered, rows, strict=True):
                if row[0] not in stored:
                    stored.add(row[0])  # two ids equal once cut to the column's length
                    new.append(record)
                    fresh.append(row)
            if fresh:
                conn.executemany(_INSERT, fresh)
                conn.executemany(_UPSERT, counter_deltas(new, sqlite=True))
            conn.execute("COMMIT")
        except BaseException:
            # Whatever failed (a missing file, a lock timeout), start over on a new
            # connection at the next attempt: nothing of this batch was committed.
            self._disconnect()
            raise
        return len(fresh)

    @staticmethod
    def _stored(conn: sqlite3.Connection, ids: list[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            sql = (
                "SELECT request_id FROM spend_ledger "  # noqa: S608 (placeholders only)
                f"WHERE request_id IN ({', '.join('?' * len(chunk))})"
            )
            found.update(r for (r,) in conn.execute(sql, chunk))
        return found

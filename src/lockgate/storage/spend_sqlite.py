"""Ledger batches into a SQLite file with plain sqlite3, in the ledger's writer process
(`spend_child`): no SQLAlchemy, and none of it on the gateway's GIL. Turning records into
rows and SQLite's own work (32 columns, eight indexes) cost about 15 µs a record.

A batch is one transaction: BEGIN IMMEDIATE takes the write lock, every row goes in with
ON CONFLICT (request_id) DO NOTHING, and when all were new (the usual case: a record is
written twice only when a spool is replayed or a commit's answer was lost) the counters
are added for all of them. Otherwise the batch is rolled back and done again with the ids
already stored looked up first, so counters count each request once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from lockgate.core.ledger_record import LedgerRecord
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


class SqliteBatches:
    """Writes batches into one SQLite file over one connection, reopened after a failure."""

    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self._conn: sqlite3.Connection | None = None

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

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def write(self, ordered: Sequence[LedgerRecord]) -> int:
        """Insert and count ``ordered`` (unique ids, in lock order); returns how many were new."""
        conn = self._conn
        if conn is None:
            conn = self._conn = self._connect()
        rows = ledger_rows(ordered, sqlite=True)
        try:
            conn.execute("BEGIN IMMEDIATE")
            before = conn.total_changes
            conn.executemany(_INSERT, rows)
            if conn.total_changes - before == len(rows):
                new: Sequence[LedgerRecord] = ordered
            else:  # some were stored already: count only the others
                conn.execute("ROLLBACK")
                conn.execute("BEGIN IMMEDIATE")
                new, rows = _unstored(conn, ordered, rows)
                conn.executemany(_INSERT, rows)
            if new:
                conn.executemany(_UPSERT, counter_deltas(new, sqlite=True))
            conn.execute("COMMIT")
        except BaseException:
            # Whatever failed (a missing file, a lock timeout), start over on a new
            # connection at the next attempt: nothing of this batch was committed.
            self.close()
            raise
        return len(new)


def _unstored(
    conn: sqlite3.Connection, ordered: Sequence[LedgerRecord], rows: list[tuple[Any, ...]]
) -> tuple[list[LedgerRecord], list[tuple[Any, ...]]]:
    ids = [row[0] for row in rows]
    stored: set[str] = set()
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i : i + _CHUNK]
        sql = (
            "SELECT request_id FROM spend_ledger "  # noqa: S608 (placeholders only)
            f"WHERE request_id IN ({', '.join('?' * len(chunk))})"
        )
        stored.update(r for (r,) in conn.execute(sql, chunk))
    new, fresh = [], []
    for record, row in zip(ordered, rows, strict=True):
        if row[0] not in stored:
            stored.add(row[0])  # two ids equal once cut to the column's length
            new.append(record)
            fresh.append(row)
    return new, fresh

"""The spend ledger's write path: ledger rows and per-scope counters in one transaction.

Rows are inserted with ON CONFLICT (request_id) DO NOTHING, so a record written twice (a
replay of the spool, a retry after a lost commit, two replicas) is stored once; counters
are incremented only for the rows that were actually inserted, with atomic upserts
(`spent = spent + excluded.spent`) so that concurrent writers never lose an increment.
Rows and counters are always locked in the same order (request id, then counter key), so
two writers cannot deadlock each other. The SQL itself is the driver's business:
`spend_sqlite` (sqlite3 in a child process of its own) and `spend_pg` (asyncpg).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from lockgate.core.ledger_record import LedgerRecord
from lockgate.storage.spend_pg import write_pg
from lockgate.storage.spend_sqlite import SqliteSpendWriter


class SpendStore:
    """Writes batches of ledger records; one instance per engine."""

    def __init__(
        self,
        engine: AsyncEngine | None = None,
        timeout: float = 5.0,
        writer_cpus: Sequence[int] | None = None,
    ) -> None:
        self._engine = engine
        self._timeout = timeout
        self._writer_cpus = writer_cpus
        self._sqlite: SqliteSpendWriter | None = None

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
        engine = self.engine
        if engine.dialect.name == "postgresql":
            return await write_pg(engine, ordered)
        if self._sqlite is None:
            path = engine.url.database
            if engine.dialect.name != "sqlite" or not path or path == ":memory:":
                raise NotImplementedError(f"no ledger writer for {engine.url.drivername}")
            self._sqlite = SqliteSpendWriter(path, self._timeout, cpus=self._writer_cpus)
        return await self._sqlite.write(ordered)

    def sqlite_child_pid(self) -> int | None:
        """The SQLite writer's process id while it runs."""
        return self._sqlite.child_pid if self._sqlite is not None else None

    async def close(self) -> None:
        if self._sqlite is not None:
            await self._sqlite.close()
            self._sqlite = None

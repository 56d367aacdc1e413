"""The spend ledger's write path: ledger rows and per-scope counters in one transaction.

Rows are inserted with ON CONFLICT (request_id) DO NOTHING, so a record written twice (a
replay of the spool, a retry after a lost commit, two replicas) is stored once; counters
are incremented only for the rows that were actually inserted, with atomic upserts
(`spent = spent + excluded.spent`) so that concurrent writers never lose an increment.
Rows and counters are always locked in the same order (request id, then counter key), so
two writers cannot deadlock each other. The SQL itself is the driver's business:
`spend_sqlite` (sqlite3) and `spend_pg` (asyncpg), both run in the ledger's writer
process (`spend_process`, `spend_child`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from lockgate.core.ledger_record import LedgerRecord
from lockgate.storage.spend_process import SpendProcess


class SpendStore:
    """Writes batches of ledger records; one instance per engine."""

    def __init__(
        self,
        engine: AsyncEngine | None = None,
        timeout: float = 5.0,
        writer_cpus: Sequence[int] | None = None,
        url: str | None = None,
    ) -> None:
        self._engine = engine
        self._timeout = timeout
        self._writer_cpus = writer_cpus
        self._url = url  # as configured (TLS options included); None: the engine's
        self._process: SpendProcess | None = None

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
        if self._process is None:
            self._process = SpendProcess(self._target(), cpus=self._writer_cpus)
        return await self._process.write(ordered)

    def _target(self) -> dict[str, Any]:
        url = self.engine.url
        if url.get_backend_name() == "postgresql":
            given = self._url or url.render_as_string(hide_password=False)
            return {"kind": "postgres", "url": given, "timeout": self._timeout}
        if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
            raise NotImplementedError(f"no ledger writer for {url.drivername}")
        return {"kind": "sqlite", "path": url.database, "timeout": self._timeout}

    def writer_pid(self) -> int | None:
        """The ledger writer process's id while it runs."""
        return self._process.child_pid if self._process is not None else None

    async def close(self) -> None:
        if self._process is not None:
            await self._process.close()
            self._process = None

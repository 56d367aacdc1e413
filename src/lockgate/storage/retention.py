"""Request-log retention: a background sweep deleting old ledger rows in bounded batches.

Rows older than `request_log.retention_days`, then the oldest beyond `max_rows`, go in
DELETEs of at most `retention_batch` rows each (one short transaction each, so the
ledger writer is never locked out for long). Budget counters live in `spend_counters`
and are not touched: deleting history never gives a key its money back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import suppress
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from lockgate.config.schema import RequestLogConfig
from lockgate.core.tasks import TaskTracker
from lockgate.storage.schema import spend_ledger

log = logging.getLogger(__name__)
T = spend_ledger.c


class Retention:
    def __init__(self, cfg: RequestLogConfig, engine: AsyncEngine, tasks: TaskTracker) -> None:
        self.cfg = cfg
        self.engine = engine
        self.tasks = tasks
        self.deleted = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def wanted(cfg: RequestLogConfig) -> bool:
        return cfg.retention_days is not None or cfg.max_rows is not None

    def start(self) -> None:
        self._task = self.tasks.spawn(self._run(), name="request-log-retention")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=5.0)

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.sweep()
            except Exception as exc:  # the database may be down: try at the next sweep
                log.warning("request log retention failed: %s", type(exc).__name__)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.cfg.retention_interval)

    async def sweep(self) -> int:
        """One pass: delete what is past retention, batch by batch; how many rows went."""
        started, removed = time.monotonic(), 0
        if self.cfg.retention_days is not None:
            cutoff = datetime.now(UTC) - timedelta(days=self.cfg.retention_days)
            removed += await self._delete_before(cutoff, None)
        if self.cfg.max_rows is not None:
            removed += await self._trim(self.cfg.max_rows)
        self.deleted += removed
        if removed:
            log.info("request log retention: %d rows deleted in %.2fs", removed,
                     time.monotonic() - started)  # fmt: skip
        return removed

    async def _delete_before(self, cutoff: datetime, last_id: int | None) -> int:
        """Delete rows older than ``cutoff`` (or, with ``last_id``, up to that id too)."""
        removed = 0
        while not self._stop.is_set():
            old = T.created_at < cutoff
            if last_id is not None:
                old = old | ((T.created_at == cutoff) & (T.id <= last_id))
            batch = select(T.id).where(old).order_by(T.created_at, T.id)
            ids = batch.limit(self.cfg.retention_batch).subquery()
            async with self.engine.begin() as conn:
                result = await conn.execute(delete(spend_ledger).where(T.id.in_(select(ids.c.id))))
            removed += result.rowcount or 0
            if (result.rowcount or 0) < self.cfg.retention_batch:
                break
        return removed

    async def _trim(self, max_rows: int) -> int:
        """Delete the oldest rows beyond ``max_rows``: everything up to the boundary row."""
        boundary = (
            select(T.created_at, T.id)
            .order_by(T.created_at.desc(), T.id.desc())
            .offset(max_rows)
            .limit(1)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(boundary)).first()
        if row is None:
            return 0
        return await self._delete_before(row.created_at, row.id)

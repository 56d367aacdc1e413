"""The spend ledger writer: records buffered off the hot path, written in batches.

`record()` only appends to a bounded in-memory buffer. One background worker (spawned on
the gateway's TaskTracker) writes batches through `SpendStore`; when the database fails,
it backs off and retries, moving records to the on-disk spool once half the buffer is
used, and replays the spool first when the database is back. A database that is up but
slower than the traffic, or stalled in a write, also gets the spool: past four batches
waiting, all but the batch being written go there, and are written once it catches up.
Only when both the buffer and the spool are full is a record dropped, and counted.
Nothing here ever blocks or fails a request. At shutdown the worker makes a final flush
(or spools what is left).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import suppress
from itertools import islice
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from lockgate.config.schema import DatabaseConfig
from lockgate.core.ledger_record import LedgerRecord
from lockgate.core.tasks import TaskTracker
from lockgate.storage.spend import SpendStore
from lockgate.storage.spool import Spool

log = logging.getLogger(__name__)

RETRY_MIN = 0.5  # seconds between attempts while the database is down, doubling
RETRY_MAX = 15.0
WRITE_TIMEOUT = 30.0  # a batch that takes longer is treated as a failure (and retried)
# Seconds from the end of one batch write to the next while fewer than PACE_BATCH records
# came during it. Without it a busy writer wrote back to back whatever arrived during the
# last write, 2-3 records a batch at one client: each batch costs the event loop, the
# feeding thread and the database a share of their own.
FLUSH_PACE = 0.01
PACE_BATCH = 16
# Records that wake an idle writer. Left for ``flush_interval`` or a full batch, records
# at a few thousand a second went in bursts of hundreds, and the writer process's burst
# on the load core (its SQLite work) held up the upstream: at one client the gateway's
# p99 went from 1.2 to 4.8 ms (make bench's c1 set-up). Batches of about 32 do not.
WAKE_BATCH = 32


class LedgerWriter:
    def __init__(
        self,
        store: SpendStore,
        cfg: DatabaseConfig,
        tasks: TaskTracker,
    ) -> None:
        self.store = store
        self.batch_size = cfg.batch_size
        self.flush_interval = cfg.flush_interval
        self.bound = cfg.buffer_records
        # Records waiting while the database is up but behind, beyond which they spool.
        self._behind = min(self.bound // 2, 4 * cfg.batch_size)
        self.spool = Spool(cfg.spool_path, cfg.spool_max_bytes) if cfg.spool_path else None
        self._tasks = tasks
        self._migrate: Callable[[], Awaitable[None]] | None = None
        self._pending: deque[LedgerRecord] = deque()
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._spiller: asyncio.Task[None] | None = None
        self._spool_lock = asyncio.Lock()  # appends, and a replay's last read and clear
        self._retry_at = 0.0  # monotonic time of the next attempt while down
        self._retry_delay = RETRY_MIN
        self.up = True
        self.counts = {"written": 0, "duplicate": 0, "spooled": 0, "dropped": 0}
        self.batches = 0  # written to the database
        self.failures = 0

    # -- hot path -------------------------------------------------------------------------

    def record(self, record: LedgerRecord) -> None:
        pending = self._pending
        if len(pending) >= self.bound:
            self.counts["dropped"] += 1
            if self.counts["dropped"] % 1000 == 1:
                log.error(
                    "spend ledger buffer and spool are full: dropped %d records so far",
                    self.counts["dropped"],
                )
            return
        pending.append(record)
        waiting = len(pending)
        if waiting == WAKE_BATCH or waiting == self.batch_size or self._stopping:
            self._wake.set()  # written now, or as soon as the write under way ends
        elif len(pending) >= self._behind and self._spiller is None and self.spool is not None:
            self._spiller = self._tasks.spawn(self._spill_behind(), name="ledger-spill")

    # -- lifecycle ------------------------------------------------------------------------

    def migrate_later(self, migrate: Callable[[], Awaitable[None]]) -> None:
        """Start-up could not migrate: run ``migrate`` before the first write."""
        self._migrate = migrate

    async def start(self) -> None:
        if self.spool is not None:
            await self.spool.open()
            if self.spool.size:
                log.info("spend ledger: %d bytes of spooled records to replay", self.spool.size)
        self._task = self._tasks.spawn(self._run(), name="ledger-writer")

    async def close(self, grace: float) -> None:
        """Final flush: write what is buffered, or spool it when the database is down."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=grace)
            if not done:
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=1.0)
        if self._pending:  # arrived after the worker's last cycle, or it was cut short
            await self._spill(final=True)

    @property
    def pending(self) -> int:
        return len(self._pending)

    # -- the worker -----------------------------------------------------------------------

    async def _run(self) -> None:
        timeout = self.flush_interval
        while not self._stopping:
            if timeout:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            await self._cycle()
            timeout = self._next_wait()
        await self._cycle(final=True)

    def _next_wait(self) -> float:
        """Seconds until the next cycle: records that arrived during a write are written
        at once when they make a batch of PACE_BATCH, else FLUSH_PACE later (or once a full
        batch waits), together, not as a small batch of their own right after it. With
        none pending, ``flush_interval``, or until WAKE_BATCH have come (``record``)."""
        pending = len(self._pending)
        if not pending or not self.up:
            return self.flush_interval
        return 0.0 if pending >= PACE_BATCH else min(FLUSH_PACE, self.flush_interval)

    async def _cycle(self, *, final: bool = False) -> None:
        if not self._pending and not (self.spool and self.spool.size) and not self._migrate:
            return
        if (final or time.monotonic() >= self._retry_at) and await self._flush(drain=final):
            return
        if final or len(self._pending) * 2 >= self.bound:
            await self._spill(final=final)

    async def _flush(self, *, drain: bool) -> bool:
        """Write the spool, then the buffer (``_write_pending``); False when the database
        failed."""
        try:
            if self._migrate is not None:
                await self._migrate()
                self._migrate = None
            if self.spool is not None and self.spool.size:
                await self._replay(self.spool)
            await self._write_pending(0, drain=drain)
        except Exception as exc:  # any database or network failure: keep the records
            self._down(exc)
            return False
        if not self.up:
            self.up = True
            self._retry_delay = RETRY_MIN
            log.warning("spend ledger: database reachable again; buffered records written")
        return True

    async def _replay(self, spool: Spool) -> None:
        offset = 0
        while True:
            async with self._spool_lock:  # nothing is appended between the last read and clear
                records, offset = await spool.read(offset, self.batch_size)
                if not records:
                    await spool.clear()
                    return
            await self._write(records)
            # A long replay must not starve new records into the buffer's bound.
            await self._write_pending(self.batch_size)

    async def _write_pending(self, keep: int, *, drain: bool = True) -> None:
        """Write buffered records in batches until at most ``keep`` are left. Without
        ``drain``, only those buffered when it starts: records arriving meanwhile wait for
        the next cycle."""
        due = len(self._pending) - keep
        while due > 0:
            batch = list(islice(self._pending, min(due, self.batch_size)))
            await self._write(batch)
            for _ in batch:
                self._pending.popleft()
            due = len(self._pending) - keep if drain else due - len(batch)

    async def _write(self, batch: list[LedgerRecord]) -> None:
        inserted = await asyncio.wait_for(self.store.write(batch), WRITE_TIMEOUT)
        self.batches += 1
        self.counts["written"] += inserted
        self.counts["duplicate"] += len(batch) - inserted

    def _down(self, exc: BaseException) -> None:
        self.failures += 1
        if self.up:
            self.up = False
            log.error(
                "spend ledger: database write failed (%s); buffering %d records and retrying",
                _describe(exc),
                len(self._pending),
            )
        self._retry_at = time.monotonic() + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, RETRY_MAX)

    async def _spill_behind(self) -> None:
        """The database is up but slower than the traffic (or stalled in a write): move
        all but the batch being written to the spool, from the buffer's new end."""
        try:
            async with self._spool_lock:
                pending = self._pending
                records = [pending.pop() for _ in range(len(pending) - self.batch_size)]
                records.reverse()
                written = await self._append(records)
                pending.extend(records[written:])  # what did not fit waits in memory
                self.counts["spooled"] += written
        finally:
            self._spiller = None

    async def _append(self, records: list[LedgerRecord]) -> int:
        assert self.spool is not None
        if not records:
            return 0
        try:
            return await self.spool.append(records)
        except OSError as exc:
            log.error("spend ledger: cannot write the spool %s: %s", self.spool.path, exc)
            return 0

    async def _spill(self, *, final: bool = False) -> None:
        """Move buffered records to the spool; at shutdown, what does not fit is lost."""
        written = 0
        if self.spool is not None:
            async with self._spool_lock:
                written = await self._append(list(self._pending))
                for _ in range(written):
                    self._pending.popleft()
        self.counts["spooled"] += written
        if final and self._pending:
            lost = len(self._pending)
            self._pending.clear()
            self.counts["dropped"] += lost
            log.error("spend ledger: %d records lost at shutdown (database and spool)", lost)

    # -- metrics --------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        records = CounterMetricFamily(
            "lockgate_ledger_records",
            "Spend ledger records: written, duplicate (already stored), spooled to disk "
            "while the database was down or behind, dropped (buffer and spool full).",
            labels=["outcome"],
        )
        for outcome, count in self.counts.items():
            records.add_metric([outcome], count)
        yield records
        yield CounterMetricFamily(
            "lockgate_ledger_write_failures", "Failed ledger batch writes.", value=self.failures
        )
        yield CounterMetricFamily(
            "lockgate_ledger_batches", "Ledger batches written.", value=self.batches
        )
        yield GaugeMetricFamily(
            "lockgate_ledger_pending_records", "Records buffered in memory.", value=self.pending
        )
        yield GaugeMetricFamily(
            "lockgate_ledger_spool_bytes",
            "Bytes of records spooled to disk, waiting for the database.",
            value=self.spool.size if self.spool else 0,
        )
        yield GaugeMetricFamily(
            "lockgate_database_up", "1 while ledger writes succeed.", value=1 if self.up else 0
        )

    def describe(self) -> list[Any]:
        return []


def _describe(exc: BaseException) -> str:
    """An error's first line, short: SQLAlchemy's messages carry the statement after it."""
    text = str(getattr(exc, "orig", None) or exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}"

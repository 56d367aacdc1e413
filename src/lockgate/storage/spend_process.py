"""Ledger batches written by a child process of the gateway's own (`spend_child`).

Writing a record costs 10-20 µs of CPU: rows, the driver binding or encoding 32 columns,
the database's own work (SQLite's eight indexes run in-process). In a thread of the
gateway that time also held the GIL against the event loop, in bursts of a whole batch:
the benchmark's p99 and streaming time to first token paid for it, and with PostgreSQL
asyncpg's encoding of a batch's arrays ran on the event loop itself. The writes run in
the child instead, for SQLite and PostgreSQL alike, started on the first batch with a
lower scheduling priority, so that it takes the gateway's core only when requests leave
it idle, and fed by one thread here that pickles a batch to its stdin and reads the count
back. A child that dies is started again at the next batch; the batch it was writing is
retried by the ledger writer (rows are idempotent by request id, counters are added only
for rows inserted).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lockgate.core.ledger_record import LedgerRecord

# The child's niceness: at 10 the kernel gives it about a tenth of a saturated core (it
# needs well under that at thousands of requests a second) and lets it have an idle one.
CHILD_NICE = 10
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding lockgate/


class LedgerChildError(RuntimeError):
    """The child could not write a batch (its error's class and first line), or died."""


class SpendProcess:
    """The parent's side: ``target`` names the database (see spend_child), secrets included:
    it reaches the child on its stdin only."""

    def __init__(
        self,
        target: dict[str, Any],
        nice: int = CHILD_NICE,
        cpus: Sequence[int] | None = None,
    ) -> None:
        self._target = target
        self.timeout = float(target["timeout"])
        self.nice = nice
        self.cpus = ",".join(str(cpu) for cpu in cpus) if cpus else "-"  # "-": inherited
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="lockgate-ledger")
        self._child: subprocess.Popen[bytes] | None = None

    async def write(self, ordered: Sequence[LedgerRecord]) -> int:
        """Insert and count ``ordered`` (unique ids, in lock order); returns how many were new."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._write, ordered)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._stop)
        self._thread.shutdown(wait=False)

    @property
    def child_pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    # -- in the worker thread -------------------------------------------------------------

    def _start(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        argv = [sys.executable, "-m", "lockgate.storage.spend_child", str(self.nice), self.cpus]
        child = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        assert child.stdin is not None
        pickle.dump(self._target, child.stdin)  # flushed with the first batch
        return child

    def _write(self, ordered: Sequence[LedgerRecord]) -> int:
        child = self._child
        if child is not None and child.poll() is not None:
            self._stop()  # it died since the last batch: close its pipes, start another
            child = None
        if child is None:
            child = self._child = self._start()
        assert child.stdin is not None and child.stdout is not None
        try:
            # Plain tuples pickle in half the time of the named ones.
            rows = [tuple(record) for record in ordered]
            pickle.dump(rows, child.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            child.stdin.flush()
            reply: tuple[str, Any] = pickle.load(child.stdout)  # noqa: S301 (our child)
        except (OSError, EOFError, pickle.UnpicklingError) as exc:
            self._stop()
            raise LedgerChildError(f"the ledger's writer process ended ({exc!r})") from exc
        status, value = reply
        if status != "ok":
            raise LedgerChildError(str(value))
        return int(value)

    def _stop(self) -> None:
        """Close the child's stdin (it commits nothing half-way: it ends between batches)."""
        child, self._child = self._child, None
        if child is None:
            return
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        try:
            child.wait(timeout=self.timeout + 5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

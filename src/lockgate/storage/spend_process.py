"""Ledger batches written by a child process of the gateway's own (`spend_child`).

Writing a record costs 10-20 µs of CPU: rows, the driver binding or encoding 32 columns,
the database's own work (SQLite's eight indexes run in-process). In a thread of the
gateway that time also held the GIL against the event loop, in bursts of a whole batch:
the benchmark's p99 and streaming time to first token paid for it, and with PostgreSQL
asyncpg's encoding of a batch's arrays ran on the event loop itself. The writes run in
the child instead, for SQLite and PostgreSQL alike, started on the first batch with a
lower scheduling priority, so that it takes the gateway's core only when requests leave
it idle. The event loop talks to it over its stdin and stdout, without blocking: one
frame per batch (a 4-byte length, then the records as JSON arrays, which orjson writes
in a fraction of pickle's time), one frame back with the count. There is no feeding
thread: one cost the gateway 1-3% of its requests a second in the benchmark's ledger
variants (docs/governance.md). A child that dies is started again at the next batch; the
batch it was writing is retried by the ledger writer (rows are idempotent by request id,
counters are added only for rows inserted). A write cut short (its timeout, shutdown)
ends the child: its late answer would be taken for the next batch's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from lockgate.core.ledger_record import LedgerRecord
from lockgate.storage.spend_child import FRAME, frame

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
        self._child: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()  # one batch at a time on the pipes

    async def write(self, ordered: Sequence[LedgerRecord]) -> int:
        """Insert and count ``ordered`` (unique ids, in lock order); returns how many were new."""
        data = frame([tuple(record) for record in ordered])  # records as JSON arrays
        async with self._lock:
            try:
                child = await self._send(data)
                assert child.stdout is not None
                size = FRAME.unpack(await child.stdout.readexactly(FRAME.size))[0]
                status, value = orjson.loads(await child.stdout.readexactly(size))
            except (OSError, asyncio.IncompleteReadError, orjson.JSONDecodeError) as exc:
                await self._stop()
                raise LedgerChildError(f"the ledger's writer process ended ({exc!r})") from exc
            except BaseException:  # cut short: its answer would be taken for the next batch's
                await self._stop(kill=True)
                raise
        if status != "ok":
            raise LedgerChildError(str(value))
        return int(value)

    async def _send(self, data: bytes) -> asyncio.subprocess.Process:
        """``data`` on a live child's stdin, on a new child's when the last one has died
        (its exit seen, or its pipe found broken before its exit was seen)."""
        child = self._child
        if child is not None and child.returncode is None:
            with contextlib.suppress(OSError):
                return await _put(child, data)
        await self._stop()
        child = self._child = await self._start()
        return await _put(child, data)

    async def close(self) -> None:
        async with self._lock:
            await self._stop()

    @property
    def child_pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    async def _start(self) -> asyncio.subprocess.Process:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lockgate.storage.spend_child", str(self.nice), self.cpus,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        assert child.stdin is not None
        child.stdin.write(frame(self._target))  # sent with the first batch
        return child

    async def _stop(self, kill: bool = False) -> None:
        """Close the child's stdin (it commits nothing half-way: it ends between batches),
        or kill it (a batch it may be writing is rolled back, and retried)."""
        child, self._child = self._child, None
        if child is None:
            return
        if kill:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
        if child.stdin is not None:
            child.stdin.close()
            with contextlib.suppress(OSError):
                await child.stdin.wait_closed()
        try:
            await asyncio.wait_for(child.wait(), self.timeout + 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await child.wait()


async def _put(child: asyncio.subprocess.Process, data: bytes) -> asyncio.subprocess.Process:
    assert child.stdin is not None
    child.stdin.write(data)
    await child.stdin.drain()
    return child

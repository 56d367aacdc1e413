"""A bounded on-disk spool of ledger records (JSON lines) for while the database is down.

Only the ledger writer's worker uses it, one call at a time; every file operation runs in a
worker thread, never in the event loop. Records are encoded and decoded on the event loop
(a thread would hold the GIL against it just the same, up to the interpreter's 5 ms switch
interval at a time), in slices of ``SLICE`` with a yield between them, so that a spill or
replay of thousands of records never stalls requests for more than a fraction of a
millisecond. Records are replayed into the database when it is
back, then the file is emptied; replaying a record twice is harmless (the ledger is
idempotent on request id).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import orjson

from lockgate.core.ledger_record import LedgerRecord

log = logging.getLogger(__name__)
SLICE = 128  # records encoded or decoded between two yields to the event loop


class Spool:
    def __init__(self, path: str | Path, max_bytes: int) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.size = 0  # bytes in the file; kept here so the hot path never stats it

    async def open(self) -> None:
        """Learn the size of a spool left by an earlier run (it is replayed first)."""
        self.size = await asyncio.to_thread(self._size)

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    async def append(self, records: list[LedgerRecord]) -> int:
        """Write as many of ``records`` as fit under ``max_bytes``; returns how many."""
        lines: list[bytes] = []
        room = self.max_bytes - self.size
        for i, record in enumerate(records):
            if i and i % SLICE == 0:
                await asyncio.sleep(0)
            line = orjson.dumps(record.to_dict()) + b"\n"
            if len(line) > room:
                break
            room -= len(line)
            lines.append(line)
        if lines:
            data = b"".join(lines)
            await asyncio.to_thread(self._write, data)
            self.size += len(data)
        return len(lines)

    def _write(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    async def read(self, offset: int, limit: int) -> tuple[list[LedgerRecord], int]:
        """Up to ``limit`` records from byte ``offset`` on, and the offset after them."""
        lines, offset = await asyncio.to_thread(self._read, offset, limit)
        records: list[LedgerRecord] = []
        for i, line in enumerate(lines):
            if i and i % SLICE == 0:
                await asyncio.sleep(0)
            try:
                records.append(LedgerRecord.from_dict(orjson.loads(line)))
            except (orjson.JSONDecodeError, TypeError) as exc:
                log.error("skipping an unreadable ledger spool line: %s", exc)
        return records, offset

    def _read(self, offset: int, limit: int) -> tuple[list[bytes], int]:
        lines: list[bytes] = []
        try:
            f = self.path.open("rb")
        except FileNotFoundError:
            return lines, offset
        with f:
            f.seek(offset)
            while len(lines) < limit:
                line = f.readline()
                if not line.endswith(b"\n"):
                    break  # end of file, or a line cut short by a crash
                offset += len(line)
                lines.append(line)
        return lines, offset

    async def clear(self) -> None:
        await asyncio.to_thread(self._clear)
        self.size = 0

    def _clear(self) -> None:
        self.path.unlink(missing_ok=True)

"""The spend ledger's writer process: batches in on stdin, counts out on stdout.

    python -m lockgate.storage.spend_child NICE CPUS

The gateway (storage/spend_process.py) starts it and first sends its target, a dict:
``{"kind": "sqlite", "path", "timeout"}`` or ``{"kind": "postgres", "url", "timeout"}``
(on stdin, not in argv, where ``ps`` would show a password). Then one batch of
`LedgerRecord`s (as arrays) at a time; it answers each with ``["ok", inserted]`` or
``["error", description]``. Every message is a frame: its length in 4 bytes, then JSON.
The rows, the SQL and the driver's encoding (about 15 µs a record for SQLite, about 20 µs
for PostgreSQL's arrays) run here, never on the gateway's GIL, and with a lower
scheduling priority they take the gateway's core only when requests leave it idle. It
ignores SIGINT and SIGTERM (a Ctrl-C reaches the whole process group, and the gateway
still has its final flush to send), and ends when its stdin closes.
"""

from __future__ import annotations

import os
import signal
import struct
import sys
from collections.abc import Sequence
from typing import Any, BinaryIO, Protocol

import orjson

from lockgate.core.ledger_record import LedgerRecord


class Batches(Protocol):
    def write(self, ordered: Sequence[LedgerRecord]) -> int:
        """Insert and count ``ordered`` (unique ids, in lock order); how many were new."""
        ...

    def close(self) -> None: ...


def open_target(target: dict[str, Any]) -> Batches:
    if target["kind"] == "sqlite":
        from lockgate.storage.spend_sqlite import SqliteBatches

        return SqliteBatches(target["path"], float(target["timeout"]))
    from lockgate.storage.spend_pg import PgBatches

    return PgBatches(target["url"], float(target["timeout"]))


FRAME = struct.Struct(">I")  # a frame's length, before its JSON


def frame(value: Any) -> bytes:
    data = orjson.dumps(value)
    return FRAME.pack(len(data)) + data


def read_frame(inbox: BinaryIO) -> Any:
    """The next message on ``inbox``; EOFError when it has ended (between frames or not)."""
    head = inbox.read(FRAME.size)
    if len(head) < FRAME.size:
        raise EOFError
    size = FRAME.unpack(head)[0]
    data = inbox.read(size)
    if len(data) < size:
        raise EOFError
    return orjson.loads(data)


def serve(inbox: BinaryIO, outbox: BinaryIO) -> None:
    """Open the target the first message names, then answer batches until ``inbox`` ends."""
    try:
        target = read_frame(inbox)
    except EOFError:
        return
    batches = open_target(target)
    while True:
        try:
            ordered = [LedgerRecord._make(values) for values in read_frame(inbox)]
        except EOFError:
            break
        try:
            reply: tuple[str, Any] = ("ok", batches.write(ordered))
        except Exception as exc:
            text = str(exc).splitlines()[0][:200] if str(exc) else ""
            reply = ("error", f"{type(exc).__name__}: {text}")
        outbox.write(frame(reply))
        outbox.flush()
    batches.close()


def main(argv: Sequence[str]) -> None:
    nice, cpus = int(argv[0]), argv[1]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if nice:
        os.nice(nice)
    if cpus != "-":
        try:
            os.sched_setaffinity(0, {int(cpu) for cpu in cpus.split(",")})
        except (OSError, AttributeError) as exc:  # no such CPU here, or not Linux
            print(f"lockgate ledger writer: writer_cpus {cpus} not applied: {exc}", file=sys.stderr)
    serve(sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main(sys.argv[1:])

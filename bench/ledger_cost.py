"""CPU a spend-ledger record costs: in the gateway's process (the hot-path hand-off and
the batches' framing), in its writer process (rows, SQL and the driver), and in the
database server, measured as process CPU time so that other work on a shared machine
inflates it little.

    .venv/bin/python bench/ledger_cost.py [--records 20000] [--url sqlite:///...]
        [--postgres postgresql://postgres@127.0.0.1:5432/test]

It starts the real `Database` (a migrated SQLite file in a temporary directory, ``--url``,
or with ``--postgres`` a fresh database on that server, dropped at the end; the server's
CPU is counted when it runs on this machine), starts the writer process with a first
record, then builds each record from a `RequestContext` with `ledger_record` as the
pipeline does and hands it to the ledger at a steady rate in slices, until all are written.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import sys
import tempfile
import time
from pathlib import Path

import benchlib
from governance import _local_port, _postgres
from lockgate.config.schema import DatabaseConfig
from lockgate.core.accounting import ledger_record
from lockgate.core.tasks import TaskTracker
from lockgate.core.types import Principal, RequestContext, Usage
from lockgate.storage.service import Database

SLICE = 250  # records handed off between two yields to the event loop


async def measure(url: str, records: int, server: list[int]) -> dict[str, float]:
    """``server``: the database server's processes, when it is local."""
    cfg = DatabaseConfig.model_validate(
        {"url": url, "spool_path": None, "buffer_records": records + SLICE}
    )
    db = Database(cfg, TaskTracker())
    await db.start()
    principal = Principal("key-bench", user_id="user-bench", team_id="team-bench")
    usage = Usage(120, 30, 0, 0, 0)

    def record(i: int) -> None:
        ctx = RequestContext(f"bench-{i:08d}", principal=principal)
        ctx.stamp("gpt-4o-mini", "openai/gpt-4o-mini", "openai")
        ctx.upstream_model, ctx.attempts = "gpt-4o-mini", 1
        ctx.bill(usage, 42_000, True)
        db.ledger.record(
            ledger_record(ctx, endpoint="chat", stream=False, status="ok", http_status=200)
        )

    record(-1)  # the writer process starts (and connects) before the measurement
    await _written(db, 1)
    writer = [db.ledger.store.writer_pid() or 0]
    handoff = 0.0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    child0, server0 = benchlib.cpu_seconds(writer), _server_cpu(server)
    for start in range(0, records, SLICE):
        t = time.perf_counter()
        for i in range(start, min(start + SLICE, records)):
            record(i)
        handoff += time.perf_counter() - t
        await asyncio.sleep(0.005)  # a steady flow, as requests would bring
    await _written(db, records + 1)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    child = benchlib.cpu_seconds(writer) - child0
    server_cpu = _server_cpu(server) - server0
    await db.close(grace=60)
    return {
        "cpu_us": cpu / records * 1e6,
        "child_us": child / records * 1e6,
        "handoff_us": handoff / records * 1e6,
        "server_us": server_cpu / records * 1e6,
        "wall_s": wall,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


async def _written(db: Database, count: int) -> None:
    deadline = time.monotonic() + 120
    while db.ledger.counts["written"] < count:
        if time.monotonic() > deadline:
            raise benchlib.BenchError(f"ledger stuck: {db.ledger.counts}")
        await asyncio.sleep(0.01)


def _server_cpu(server: list[int]) -> float:
    """The local database server's CPU seconds: its processes now, and those it reaped
    (PostgreSQL forks a backend per connection)."""
    total = 0.0
    for root in server:
        total += benchlib.cpu_seconds(benchlib.process_tree(root))
        fields = benchlib._stat_fields(root)
        total += (int(fields[13]) + int(fields[14])) / benchlib.CLK_TCK
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--url", help="a database URL (default: a fresh SQLite file)")
    parser.add_argument("--postgres", help="a PostgreSQL server URL: a fresh database on it")
    args = parser.parse_args()
    server: list[int] = []
    with (
        tempfile.TemporaryDirectory(prefix="lockgate-ledger-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        url = args.url or f"sqlite:///{Path(tmp) / 'lockgate.db'}"
        if args.postgres:
            url = stack.enter_context(_postgres(args.postgres))
            port = _local_port(args.postgres, 5432)
            pid = benchlib.listening_pid(port) if port else None
            server = [pid] if pid else []
        result = asyncio.run(measure(url, args.records, server))
    database = f", {result['server_us']:.1f} µs in the database server" if server else ""
    print(
        f"{args.records} records: {result['cpu_us']:.1f} µs CPU/record in the gateway's"
        f" process (all threads), {result['child_us']:.1f} µs in its writer process"
        f"{database}, hand-off {result['handoff_us']:.2f} µs/record, {result['wall_s']:.1f} s,"
        f" max RSS {result['maxrss_mb']:.0f} MB",
        file=sys.stdout,
    )


if __name__ == "__main__":
    main()

"""CPU a spend-ledger record costs the gateway process: the hot-path hand-off plus the
writer's share (the feeding thread here; rows and SQL in the SQLite writer's child
process, counted apart), measured as process CPU time so that other work on a shared
machine inflates it little.

    .venv/bin/python bench/ledger_cost.py [--records 20000] [--url sqlite:///...]

It starts the real `Database` (migrated SQLite file in a temporary directory, or
``--url``), builds each record from a `RequestContext` with `ledger_record` as the
pipeline does, hands it to the ledger writer at a steady rate in slices, and drains at
close. Prints µs of CPU per record (all threads), the hand-off's own µs, and batches.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path

from lockgate.config.schema import DatabaseConfig
from lockgate.core.accounting import ledger_record
from lockgate.core.tasks import TaskTracker
from lockgate.core.types import Principal, RequestContext, Usage
from lockgate.storage.service import Database

SLICE = 250  # records handed off between two yields to the event loop


async def measure(url: str, records: int) -> dict[str, float]:
    cfg = DatabaseConfig.model_validate(
        {"url": url, "spool_path": None, "buffer_records": records + SLICE}
    )
    db = Database(cfg, TaskTracker())
    await db.start()
    principal = Principal("key-bench", user_id="user-bench", team_id="team-bench")
    usage = Usage(120, 30, 0, 0, 0)
    handoff = 0.0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    child0 = _children_cpu()
    for start in range(0, records, SLICE):
        t = time.perf_counter()
        for i in range(start, min(start + SLICE, records)):
            ctx = RequestContext(f"bench-{i:08d}", principal=principal)
            ctx.stamp("gpt-4o-mini", "openai/gpt-4o-mini", "openai")
            ctx.upstream_model, ctx.attempts = "gpt-4o-mini", 1
            ctx.bill(usage, 42_000, True)
            db.ledger.record(
                ledger_record(ctx, endpoint="chat", stream=False, status="ok", http_status=200)
            )
        handoff += time.perf_counter() - t
        await asyncio.sleep(0.005)  # a steady flow, as requests would bring
    await db.close(grace=60)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    child = _children_cpu() - child0  # the SQLite writer's process, waited for at close
    assert db.ledger.counts["written"] == records, db.ledger.counts
    return {
        "cpu_us": cpu / records * 1e6,
        "child_us": child / records * 1e6,
        "handoff_us": handoff / records * 1e6,
        "wall_s": wall,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--url", help="a database URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lockgate-ledger-") as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'lockgate.db'}"
        result = asyncio.run(measure(url, args.records))
    print(
        f"{args.records} records: {result['cpu_us']:.1f} µs CPU/record in the gateway's"
        f" process (all threads), {result['child_us']:.1f} µs in its writer process,"
        f" hand-off {result['handoff_us']:.2f} µs/record, {result['wall_s']:.1f} s,"
        f" max RSS {result['maxrss_mb']:.0f} MB",
        file=sys.stdout,
    )


if __name__ == "__main__":
    main()

"""Dashboard query cost on a large SQLite ledger: series, latency, a page of recent requests.

    .venv/bin/python bench/dashboard_queries.py [--rows 100000]

Fills a temporary SQLite database with ``--rows`` ledger rows spread over the last 24 hours
(4 model groups, 8 deployments, 50 keys), then times each /ui/api query over 1 hour and over
24 hours (median of 5 runs).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lockgate.config.schema import DatabaseConfig
from lockgate.core.ledger_record import LedgerRecord
from lockgate.storage import dashboard_queries as q
from lockgate.storage.database import create_engine
from lockgate.storage.migrate import upgrade_async
from lockgate.storage.spend import SpendStore


def _record(i: int, now: float, rng: random.Random) -> LedgerRecord:
    model = rng.choice(["gpt-4o-mini", "gpt-4o", "claude", "gemini"])
    ok = rng.random() > 0.05
    return LedgerRecord(
        request_id=f"r{i}", started_at=now - rng.random() * 86_400, key_id=f"key-{i % 50}",
        user_id=None, team_id=f"team-{i % 5}", endpoint="chat", model_group=model,
        deployment=f"{model}-{i % 2}", provider="openai", model=model, prompt_tokens=100,
        completion_tokens=50, cached_tokens=0, cache_creation_tokens=0, reasoning_tokens=0,
        cost_nanos=rng.randint(1_000, 90_000) if ok else 0, priced=True, usage_estimated=False,
        cache_hit=rng.random() < 0.1, coalesced=False, stream=False,
        latency_ms=int(rng.lognormvariate(5, 0.6)), status="ok" if ok else "upstream",
        http_status=200 if ok else 502, attempts=1,
    )  # fmt: skip


async def main(rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = DatabaseConfig(url=f"sqlite:///{Path(tmp) / 'bench.db'}", spool_path=None)
        await upgrade_async(cfg)
        engine = create_engine(cfg)
        store = SpendStore(engine)
        rng, now = random.Random(1), time.time()
        for start in range(0, rows, 1000):
            await store.write([_record(i, now, rng) for i in range(start, start + 1000)])
        end = datetime.now(UTC)
        for hours, bucket in ((1, 30), (24, 900)):
            rng_ = q.Range(end - timedelta(hours=hours), end)
            for name, call in (
                ("series by model", lambda r=rng_, b=bucket: q.series(engine, r, "model", b)),
                ("series by key", lambda r=rng_, b=bucket: q.series(engine, r, "key", b)),
                ("latency", lambda r=rng_, b=bucket: q.latency(engine, r, b)),
                ("recent page", lambda r=rng_: q.recent(engine, r, 25, 0)),
            ):
                times = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    await call()
                    times.append((time.perf_counter() - t0) * 1000)
                print(
                    f"{rows} rows, last {hours:>2} h, {name:<16} {statistics.median(times):7.1f} ms"
                )
        await store.close()
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    asyncio.run(main(parser.parse_args().rows))

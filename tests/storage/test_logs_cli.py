"""`lockgate logs tail` as a user runs it: the last rows as a table, then new ones with
--follow, read from a real database by a real process."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from lockgate.config.schema import DatabaseConfig
from lockgate.storage.database import create_engine
from lockgate.storage.migrate import upgrade_async
from lockgate.storage.spend import SpendStore
from tests.storage.records import make_record


async def test_tail_then_follow(tmp_path: Path) -> None:
    cfg = DatabaseConfig(url=f"sqlite:///{tmp_path}/lockgate.db", spool_path=None)
    await upgrade_async(cfg)
    engine = await asyncio.to_thread(create_engine, cfg)
    store = SpendStore(engine)
    now = time.time()
    await store.write(
        [make_record(f"req-{i}", started_at=now - 10 + i, cache_status="miss") for i in range(5)]
        + [
            make_record(
                "req-failed",
                started_at=now,
                status="upstream",
                ttft_ms=321,
                fallback=True,
                cost_nanos=1_500_000_000,
            )
        ]
    )
    config = tmp_path / "lockgate.yaml"
    await asyncio.to_thread(
        config.write_text, f"database: {{url: 'sqlite:///{tmp_path}/lockgate.db'}}\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lockgate", "logs", "tail", "-c", str(config), "-n", "3",
        "--follow", "--interval", "0.05",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        lines = [(await asyncio.wait_for(proc.stdout.readline(), 20)).decode() for _ in range(4)]
        assert lines[0].split()[:3] == ["time", "(UTC)", "request"]
        assert [line.split()[2] for line in lines[1:]] == ["req-3", "req-4", "req-failed"]
        failed = lines[3].split()
        assert failed[5] == "upstream" and failed[7] == "321" and failed[9] == "y"
        assert failed[-1] == "1.500000"

        await store.write([make_record("req-new", started_at=now - 60)])  # started earlier
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert line.split()[2] == "req-new"
    finally:
        proc.terminate()
        await proc.wait()
        await store.close()
        await engine.dispose()

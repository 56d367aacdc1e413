"""`lockgate serve` as a process: SIGTERM drains the spend ledger (a final flush)."""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal
from pathlib import Path

import openai

from lockgate.providers.simulator import Simulator, SimulatorOptions
from tests.integration.gateway_process import clean_env, free_port, run_cli, start_gateway


def _ledger(path: Path) -> list[tuple[str, str, int]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT request_id, status, cost_nanos FROM spend_ledger ORDER BY request_id"
        ).fetchall()


async def test_sigterm_flushes_the_ledger(tmp_path: Path) -> None:
    sim = Simulator(SimulatorOptions(latency="300ms"))
    url = await sim.start(host="127.0.0.1", port=0)
    db = tmp_path / "spend.db"
    config = tmp_path / "lockgate.yaml"
    # A flush interval far beyond the test: only the final flush at shutdown writes rows.
    text = (
        f"database: {{url: 'sqlite:///{db}', flush_interval: 3600, spool_path: "
        f"'{tmp_path / 'spool'}'}}\n"
        f"models:\n  - name: gpt-4o-mini\n    deployments:\n      - {{provider: openai, "
        f"model: gpt-4o-mini, api_base: '{url}', api_key: sk-x}}\n"
    )
    await asyncio.to_thread(config.write_text, text)
    gw = await start_gateway("--config", str(config), env=clean_env(), port=free_port())
    try:
        async with openai.AsyncOpenAI(
            base_url=f"{gw.url}/v1", api_key="x", max_retries=0
        ) as client:
            for i in range(5):
                await client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                    extra_headers={"x-request-id": f"done-{i}"},
                )  # fmt: skip
            slow = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "slow"}],
                extra_headers={"x-request-id": "in-flight"},
            )  # fmt: skip
            in_flight = asyncio.ensure_future(slow)
            await asyncio.sleep(0.1)
            gw.terminate()
            await in_flight
        assert await gw.wait() == 0
    finally:
        await gw.stop()
        await sim.stop()
    rows = await asyncio.to_thread(_ledger, db)
    assert [r[0] for r in rows] == [*(f"done-{i}" for i in range(5)), "in-flight"]
    assert all(status == "ok" and cost > 0 for _, status, cost in rows)
    assert not await asyncio.to_thread((tmp_path / "spool").exists)

    code, out, err = await run_cli("spend", "--config", str(config), "--by", "model")
    assert code == 0, err
    line = next(line for line in out.splitlines() if line.startswith("gpt-4o-mini"))
    usd, requests = line.split()[1:3]
    assert Decimal(usd) == Decimal(sum(cost for _, _, cost in rows)) / 10**9
    assert requests == "6"

"""What governance costs a request: auth by virtual key (cached), rate limits, a budget and
the ledger, against no governance, at concurrency 64.

    .venv/bin/python bench/governance.py [--seconds 10] [--redis URL] [--postgres URL]

One event loop (uvloop) runs the simulator (no delay), the gateway under test and an
aiohttp client with 64 requests in flight. Variants, each measured for ``--seconds`` after a
warm-up, in turn:

- `none`: master key, no database (`database: null`): no auth lookup, no limits, no ledger;
- `ledger only`: master key with a SQLite ledger: the ledger's share of the cost;
- `memory`: SQLite file; a virtual key with key rpm/tpm limits, a team tpm limit and a
  monthly budget (all far above the load): in-process engines, ledger rows written;
- `redis+postgres` (with --redis and --postgres): the same on a fresh PostgreSQL database
  (dropped at the end) with the Redis engines (keys under a fresh prefix, deleted at the end).

Prints requests/s per variant and the drop against `none` (target: less than 20%). The
client and the simulator share the process, so absolute figures are low; the ratio is the
point.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from typing import Any

import aiohttp
import asyncpg
import uvloop
from aiohttp import web

from lockgate.app import build_app
from lockgate.config.loader import parse_config
from lockgate.providers.simulator import Simulator, SimulatorOptions

MASTER = "sk-bench-master"
CONCURRENCY = 64
BODY = {"model": "m", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 16}


async def _gateway(api_base: str, sections: dict[str, Any]) -> tuple[web.AppRunner, str]:
    raw: dict[str, Any] = {
        "server": {"master_key": MASTER},
        "models": [{"name": "m", "deployments": [
            {"provider": "openai", "model": "gpt-4o-mini", "api_base": api_base, "api_key": "k"}
        ]}],
        **sections,
    }  # fmt: skip
    runner = web.AppRunner(build_app(parse_config(raw, env={})), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def _admin(http: aiohttp.ClientSession, url: str, method: str, path: str, body: Any) -> Any:
    headers = {"Authorization": f"Bearer {MASTER}"}
    async with http.request(method, url + path, json=body, headers=headers) as resp:
        data = await resp.json()
        if resp.status >= 300:
            raise RuntimeError(f"{path}: {resp.status} {data}")
        return data


async def _virtual_key(http: aiohttp.ClientSession, url: str) -> str:
    await _admin(http, url, "POST", "/admin/teams", {"id": "bench", "name": "bench"})
    await _admin(http, url, "PUT", "/admin/teams/bench/limits", {"tpm": 10**9})
    created = await _admin(http, url, "POST", "/admin/keys", {"team_id": "bench"})
    key_id = created["id"]
    await _admin(http, url, "PUT", f"/admin/keys/{key_id}/limits", {"rpm": 10**8, "tpm": 10**9})
    await _admin(http, url, "PUT", f"/admin/keys/{key_id}/budgets", {"limit_usd": "1000000"})
    return str(created["key"])


async def _load(http: aiohttp.ClientSession, url: str, key: str, seconds: float) -> float:
    headers = {"Authorization": f"Bearer {key}"}
    done = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            async with http.post(f"{url}/v1/chat/completions", json=BODY, headers=headers) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"status {r.status}: {(await r.read())[:200]!r}")
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return done / (time.perf_counter() - started)


async def _variant(sim: Simulator, name: str, sections: dict[str, Any], seconds: float) -> float:
    runner, url = await _gateway(sim.base_url, sections)
    try:
        connector = aiohttp.TCPConnector(limit=CONCURRENCY)
        async with aiohttp.ClientSession(connector=connector) as http:
            key = MASTER if name == "none" else await _virtual_key(http, url)
            await _load(http, url, key, min(2.0, seconds))  # warm-up
            return await _load(http, url, key, seconds)
    finally:
        await runner.cleanup()


async def main(seconds: float, redis_url: str | None, postgres_url: str | None) -> None:
    sim = Simulator(SimulatorOptions())
    await sim.start(host="127.0.0.1", port=0)
    results: dict[str, float] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            results["none"] = await _variant(sim, "none", {"database": None}, seconds)
            ledger = {"database": {"url": f"sqlite:///{tmp}/l.db", "spool_path": None}}
            results["ledger only"] = await _variant(sim, "none", ledger, seconds)
            memory = {"database": {"url": f"sqlite:///{tmp}/bench.db", "spool_path": None}}
            results["memory"] = await _variant(sim, "memory", memory, seconds)
        if redis_url and postgres_url:
            name = f"lockgate_bench_{uuid.uuid4().hex[:12]}"
            prefix = f"lgbench:{uuid.uuid4().hex[:8]}:"
            admin = postgres_url.rsplit("/", 1)[0]
            conn = await asyncpg.connect(postgres_url)
            await conn.execute(f'CREATE DATABASE "{name}"')
            try:
                shared = {
                    "database": {"url": f"{admin}/{name}", "spool_path": None},
                    "redis": {"url": redis_url, "prefix": prefix},
                }
                results["redis+postgres"] = await _variant(sim, "shared", shared, seconds)
            finally:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await conn.close()
                await _forget(redis_url, prefix)
    finally:
        await sim.stop()
    base = results["none"]
    for variant, rate in results.items():
        drop = (1 - rate / base) * 100
        verdict = (
            "" if variant == "none" else f"  {drop:5.1f}% fewer  {'PASS' if drop < 20 else 'FAIL'}"
        )
        print(f"{variant:15} {rate:8.0f} req/s{verdict}")


async def _forget(redis_url: str, prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--redis", help="e.g. redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--postgres", help="a server URL, e.g. postgresql://postgres@127.0.0.1:5432/test"
    )
    args = parser.parse_args()
    uvloop.run(main(args.seconds, args.redis, args.postgres))

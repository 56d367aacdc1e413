"""What sharing state through Redis costs a request: the same gateway with and without
`redis:` configured, against the in-process provider simulator.

    LOCKGATE_BENCH_REDIS_URL=redis://127.0.0.1:6379/0 \
        .venv/bin/python bench/shared_state_cost.py [--requests 2000]

One event loop (uvloop) runs the simulator (no delay), two gateways (one alone, one with a
Redis link) and a sequential aiohttp client. Requests go one at a time, alternating blocks
of 100 between the two gateways so that machine noise hits both alike. Two kinds:

- `sampled` (temperature 0.7): not coalescible, so no Redis command on its path; cooldowns
  and limits are read from the replica's local state;
- `deterministic` (temperature 0, each with a unique prompt so nothing is shared): pays the
  coalescing claim (one `SET NX GET`) and queues the leader's result publication.

It prints the median and p90 of each. Absolute figures include the client's and the
simulator's work in the same process; the difference between the two gateways is the cost.
Keys are written under a fresh prefix and deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from typing import Any

import aiohttp
import uvloop
from aiohttp import web

from lockgate.app import build_app
from lockgate.config.loader import parse_config
from lockgate.config.schema import RedisConfig
from lockgate.providers.simulator import Simulator, SimulatorOptions
from lockgate.storage.redis import SharedRedis

KEY = "sk-bench-master"
BLOCK = 100


async def _gateway(api_base: str, redis: dict[str, Any] | None) -> tuple[web.AppRunner, str]:
    raw: dict[str, Any] = {
        "server": {"master_key": KEY},
        "models": [
            {
                "name": "m",
                "deployments": [
                    {"provider": "openai", "model": "m", "api_base": api_base, "api_key": "k"}
                ],
            }
        ],
    }
    if redis is not None:
        raw["redis"] = redis
    app = build_app(parse_config(raw, env={}))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/v1/chat/completions"


async def _time(http: aiohttp.ClientSession, url: str, temperature: float) -> float:
    body = {
        "model": "m",
        "temperature": temperature,
        "messages": [{"role": "user", "content": f"hello {uuid.uuid4().hex}"}],
    }
    started = time.perf_counter()
    async with http.post(url, json=body, headers={"Authorization": f"Bearer {KEY}"}) as resp:
        await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"status {resp.status}")
    return time.perf_counter() - started


async def main(requests: int, redis_url: str) -> None:
    sim = Simulator(SimulatorOptions())
    await sim.start(host="127.0.0.1", port=0)
    prefix = f"lgbench:{uuid.uuid4().hex[:8]}:"
    alone, alone_url = await _gateway(sim.base_url, None)
    shared, shared_url = await _gateway(sim.base_url, {"url": redis_url, "prefix": prefix})
    try:
        async with aiohttp.ClientSession() as http:
            for url in (alone_url, shared_url):  # warm up connections and code paths
                for _ in range(50):
                    await _time(http, url, 0)
            for kind, temperature in (("sampled", 0.7), ("deterministic", 0.0)):
                samples: dict[str, list[float]] = {"without redis": [], "with redis": []}
                while len(samples["with redis"]) < requests:
                    for name, url in (("without redis", alone_url), ("with redis", shared_url)):
                        for _ in range(BLOCK):
                            samples[name].append(await _time(http, url, temperature))
                for name, values in samples.items():
                    q = statistics.quantiles(values, n=10)
                    print(
                        f"{kind:13} {name:13} n={len(values)} "
                        f"median {statistics.median(values) * 1000:.3f} ms  "
                        f"p90 {q[8] * 1000:.3f} ms"
                    )
    finally:
        await shared.cleanup()
        await alone.cleanup()
        await sim.stop()
        await _forget(redis_url, prefix)


async def _forget(redis_url: str, prefix: str) -> None:
    redis = SharedRedis(RedisConfig.model_validate({"url": redis_url, "prefix": prefix}))
    try:
        keys = [k async for k in redis.client.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.client.delete(*keys)
    finally:
        await redis.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="per gateway and kind")
    args = parser.parse_args()
    url = os.environ.get("LOCKGATE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    uvloop.run(main(args.requests, url))

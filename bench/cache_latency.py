"""Cache latency: what a hit costs compared with a miss, exact and semantic.

    .venv/bin/python bench/cache_latency.py [--requests 300]

In one process: the provider simulator with a 200 ms answer, a gateway with the memory
cache and a semantic model group (the local all-MiniLM-L6-v2), and an aiohttp client
sending requests one at a time. Prints p50/p99 of each kind of request. Bounded: a few
hundred requests to 127.0.0.1, then everything stops.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import aiohttp
from aiohttp import web

from lockgate.app import build_app
from lockgate.config.loader import parse_config
from lockgate.embedding import minilm
from lockgate.providers.simulator import Simulator, SimulatorOptions

KEY = "sk-bench"


def _quantiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1000:7.2f} ms   p99 {p99 * 1000:7.2f} ms"


async def main(requests: int) -> None:
    sim = Simulator(SimulatorOptions(api_key=KEY, latency="200ms", seed=1))
    await sim.start(host="127.0.0.1", port=0)
    deployment = {"provider": "openai", "model": "gpt-4o-mini", "api_base": sim.base_url,
                  "api_key": KEY}  # fmt: skip
    semantic = {"enabled": True}
    models = [
        {"name": "exact", "deployments": [deployment]},
        {"name": "semantic", "deployments": [deployment], "cache": {"semantic": semantic}},
    ]
    config = parse_config({"cache": {}, "models": models}, env={})
    runner = web.AppRunner(build_app(config), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/chat/completions"
    try:
        async with aiohttp.ClientSession() as http:

            async def ask(model: str, text: str, **extra: Any) -> tuple[float, str]:
                body = {"model": model, "temperature": 0, **extra,
                        "messages": [{"role": "user", "content": text}]}  # fmt: skip
                started = time.perf_counter()
                async with http.post(url, json=body) as resp:
                    await resp.read()
                    return time.perf_counter() - started, resp.headers["x-lockgate-cache"]

            await ask("semantic", "warm the local model up")
            misses, hits, sem_misses, sem_hits = [], [], [], []
            for i in range(requests):
                for model, miss_list in (
                    ("exact", misses),
                    ("semantic", sem_misses),
                ):
                    seconds, result = await ask(model, f"What is the capital of country {i}?")
                    assert result == "miss", result
                    miss_list.append(seconds)
                seconds, result = await ask("exact", f"What is the capital of country {i}?")
                assert result == "hit", result
                hits.append(seconds)
                seconds, result = await ask(
                    "semantic", f"Which city is the capital of country {i}?"
                )
                if result == "hit":
                    sem_hits.append(seconds)
            texts = [f"Which city is the capital of country {i}?" for i in range(requests)]
            started = time.perf_counter()
            for text in texts:
                await minilm.embed([text])
            embed_ms = (time.perf_counter() - started) / len(texts) * 1000
    finally:
        await runner.cleanup()
        await sim.stop()
    print(f"exact miss    (upstream 200 ms): {_quantiles(misses)}")
    print(f"exact hit                      : {_quantiles(hits)}")
    print(f"semantic miss (embed + upstream): {_quantiles(sem_misses)}")
    if sem_hits:
        print(f"semantic hit  (embed + search) : {_quantiles(sem_hits)}")
    print(f"semantic paraphrase hit rate   : {len(sem_hits)}/{requests}")
    print(f"local embedding, one short text: {embed_ms:.2f} ms (mean, from the event loop)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(main(min(args.requests, 2000)))

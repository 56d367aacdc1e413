"""What the tracing hooks cost when tracing is off: median request latency of this tree
with no `tracing:` section against `main`'s source, and with tracing on for scale.

    .venv/bin/python bench/tracing_cost.py [--requests 2000] [--rounds 3]

Each variant runs in its own process (main's source is extracted with `git archive` to a
temporary directory and put first on PYTHONPATH): an in-process gateway on a real socket
in front of the provider simulator, one client sending sequential non-streaming chat
requests. Variants alternate round by round so that machine noise hits them alike.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-bench"


async def _child(requests: int, tracing: bool) -> float:
    import aiohttp
    from aiohttp import web

    from lockgate.app import build_app
    from lockgate.config.loader import parse_config
    from lockgate.providers.simulator import Simulator, SimulatorOptions

    sim = Simulator(SimulatorOptions(api_key=KEY, seed=1))
    await sim.start(host="127.0.0.1", port=0)

    async def sink(request: web.Request) -> web.Response:  # an OTLP collector that drops all
        await request.read()
        return web.Response()

    collector = web.Application()
    collector.router.add_post("/v1/traces", sink)
    sink_runner = web.AppRunner(collector, access_log=None)
    await sink_runner.setup()
    await web.TCPSite(sink_runner, "127.0.0.1", 0).start()
    sections = {}
    if tracing:
        endpoint = f"http://127.0.0.1:{sink_runner.addresses[0][1]}"
        sections["tracing"] = {"otlp_endpoint": endpoint}
    config = parse_config(
        {
            "database": None,
            "models": [
                {
                    "name": "gpt-4o-mini",
                    "deployments": [
                        {
                            "provider": "openai",
                            "model": "gpt-4o-mini",
                            "api_base": f"{sim.base_url}",
                            "api_key": KEY,
                        }
                    ],
                }
            ],
            **sections,
        },
        env={},
    )
    runner = web.AppRunner(build_app(config), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/chat/completions"
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    samples = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as http:
        for i in range(requests + 200):
            started = time.perf_counter()
            async with http.post(url, json=body) as resp:
                await resp.read()
                assert resp.status == 200
            if i >= 200:  # the first ones warm caches and connections
                samples.append(time.perf_counter() - started)
    await runner.cleanup()
    await sink_runner.cleanup()
    await sim.stop()
    return statistics.median(samples) * 1e6


def _run(src: Path, requests: int, tracing: bool) -> float:
    env = {**os.environ, "PYTHONPATH": str(src), "LOCKGATE_LOG_LEVEL": "WARNING"}
    args = [sys.executable, __file__, "--child", "--requests", str(requests)]
    out = subprocess.run(
        args + (["--tracing"] if tracing else []), env=env, capture_output=True, text=True,
        check=True, timeout=600,
    )  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tracing", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.child:
        print(f"{asyncio.run(_child(args.requests, args.tracing)):.1f}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "main.tar"
        with archive.open("wb") as out:
            subprocess.run(
                ["git", "-C", str(ROOT), "archive", "main", "src"], stdout=out, check=True
            )
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        variants = {
            "main": (Path(tmp) / "src", False),
            "this branch, tracing off": (ROOT / "src", False),
            "this branch, tracing on": (ROOT / "src", True),
        }
        results: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, (src, tracing) in variants.items():
                results[name].append(_run(src, args.requests, tracing))
    for name, medians in results.items():
        shown = ", ".join(f"{m:.0f}" for m in medians)
        print(f"{name:<28} median {statistics.median(medians):7.0f} us  (rounds: {shown})")


if __name__ == "__main__":
    main()

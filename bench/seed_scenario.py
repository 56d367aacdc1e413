"""The seed scenario: what users of an AI feature see when the provider misbehaves.

    .venv/bin/python bench/seed_scenario.py [--duration 120] [--users 50] [--no-write]

50 users, each sending its next chat request when the previous one ends, for 120 s,
against simulated providers:
- primary: 20 requests/s (1200 rpm, one second of burst), lognormal latency (median
  1.5 s, p99 20 s), 2% 500s, and a 30 s outage in the middle;
- secondary (dearer): also 20 requests/s, lognormal latency (median 1 s, p99 5 s).
Three ways of calling, same run: (a) the primary directly with the openai SDK's defaults
(2 retries), (b) the primary directly with exponential-backoff retries (full jitter,
retry-after honoured, up to 6 attempts), (c) through lockgate, which has both providers
in one model group (ordered, hedged after the group's p95) and admission control.
Reports success rate, latency percentiles, client-visible 429s and upstream requests per
user request (amplification), and writes them to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import openai
import yaml

import benchlib
from lockgate.providers.simulator import Simulator, SimulatorOptions

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
KEY = "sk-seed-master"
PRIMARY_P99_S = 20.0  # the primary's own latency p99, as configured below
MESSAGES = [
    {"role": "system", "content": "You summarise web pages in three sentences."},
    {"role": "user", "content": "Summarise: https://example.com/some/long/article"},
]
Send = Callable[[], Awaitable[None]]


def primary_options(duration: float) -> SimulatorOptions:
    outage = min(30.0, duration / 4)
    return SimulatorOptions(
        rpm=1200,
        burst_seconds=1,
        latency="lognormal:median=1500ms,p99=20000ms",
        error_rates={500: 0.02},
        outages=[((duration - outage) / 2, outage)],
        seed=11,
    )


def secondary_options() -> SimulatorOptions:
    return SimulatorOptions(
        rpm=1200, burst_seconds=1, latency="lognormal:median=1000ms,p99=5000ms", seed=12
    )


@dataclass
class Outcome:
    mode: str
    latencies: list[float] = field(default_factory=list)  # successful requests, seconds
    failures: dict[str, int] = field(default_factory=dict)
    client_429s: int = 0
    upstream: int = 0
    examples: dict[str, str] = field(default_factory=dict)  # a message per failure kind

    @property
    def requests(self) -> int:
        return len(self.latencies) + sum(self.failures.values())

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else 0.0


async def _users(count: int, duration: float, send: Send, outcome: Outcome) -> None:
    deadline = time.monotonic() + duration

    async def user() -> None:
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                await send()
            except openai.APIStatusError as exc:
                kind = str(exc.status_code)
                outcome.failures[kind] = outcome.failures.get(kind, 0) + 1
                outcome.examples.setdefault(kind, exc.message[:400])
                outcome.client_429s += exc.status_code == 429
            except openai.APIError as exc:
                name = type(exc).__name__
                outcome.failures[name] = outcome.failures.get(name, 0) + 1
            else:
                outcome.latencies.append(time.monotonic() - started)

    await asyncio.gather(*(user() for _ in range(count)))


def _create(client: openai.AsyncOpenAI, model: str) -> Send:
    async def send() -> None:
        await client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=64)  # type: ignore[arg-type]

    return send


def _with_backoff(client: openai.AsyncOpenAI, model: str, attempts: int = 6) -> Send:
    """What a team hand-writes around each call: exponential backoff, full jitter."""
    rng = random.Random(5)

    async def send() -> None:
        for attempt in range(attempts):
            try:
                await client.chat.completions.create(
                    model=model,
                    messages=MESSAGES,  # type: ignore[arg-type]
                    max_tokens=64,
                )
                return
            except (openai.RateLimitError, openai.InternalServerError) as exc:
                if attempt + 1 == attempts:
                    raise
                wait = rng.uniform(0, min(30.0, 0.5 * 2**attempt))
                after = exc.response.headers.get("retry-after")
                if after is not None:
                    wait = max(wait, float(after))
                await asyncio.sleep(wait)

    return send


def gateway_config(primary: str, secondary: str) -> dict[str, object]:
    return {
        "server": {"master_key": KEY},
        "retry": {"retries": 2, "budget_ratio": 0.15, "budget_min_retries": 5},
        "admission": {"max_wait": 60},
        "models": [
            {
                "name": "summarise",
                "strategy": "ordered",
                "hedge_after": "p95",
                "deployments": [
                    {"id": "primary", "provider": "openai", "model": "gpt-4o-mini",
                     "api_base": primary, "api_key": "sk-up"},
                    {"id": "secondary", "provider": "openai", "model": "gpt-4o",
                     "api_base": secondary, "api_key": "sk-up"},
                ],
            }
        ],
    }  # fmt: skip


async def _start_gateway(config: Path, port: int) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lockgate", "serve", "--config", str(config), "--port", str(port),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            try:
                async with http.get(f"http://127.0.0.1:{port}/health/ready") as resp:
                    if resp.status == 200:
                        return proc
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
    proc.kill()
    raise RuntimeError("the gateway did not start")


async def run(duration: float, users: int, workdir: Path) -> tuple[list[Outcome], float]:
    primary, secondary = Simulator(primary_options(duration)), Simulator(secondary_options())
    primary_url = await primary.start(port=0)
    secondary_url = await secondary.start(port=0)
    config = workdir / "seed.yaml"
    config.write_text(yaml.safe_dump(gateway_config(primary_url, secondary_url)))
    port = benchlib.free_port()
    gateway = await _start_gateway(config, port)
    outcomes = []
    try:
        modes: list[tuple[str, Callable[[], tuple[openai.AsyncOpenAI, Send]]]] = [
            ("(a) direct, SDK defaults", lambda: _direct(primary_url, None)),
            ("(b) direct, exponential backoff", lambda: _direct(primary_url, "backoff")),
            ("(c) through lockgate", lambda: _through(port)),
        ]
        only = os.environ.get("SEED_ONLY")
        for name, build in modes:
            if only and only not in name:
                continue
            for sim in (primary, secondary):
                sim.reset()  # fresh limits, counters and outage clock
            _, send = build()
            outcome = Outcome(name)
            print(f"{name}: {users} users for {duration:g} s ...", flush=True)
            await _users(users, duration, send, outcome)
            outcome.upstream = sum(
                sim.counts["/v1/chat/completions"] for sim in (primary, secondary)
            )
            outcomes.append(outcome)
            print(f"  {summary(outcome)}", flush=True)
            for kind, message in outcome.examples.items():
                print(f"    {kind}: {message}", flush=True)
        primary_p99 = PRIMARY_P99_S
    finally:
        os.killpg(gateway.pid, signal.SIGTERM)
        await gateway.wait()
        await primary.stop()
        await secondary.stop()
    return outcomes, primary_p99


def _direct(url: str, style: str | None) -> tuple[openai.AsyncOpenAI, Send]:
    if style is None:
        client = openai.AsyncOpenAI(base_url=url, api_key="sk-up")  # the SDK's 2 retries
        return client, _create(client, "gpt-4o-mini")
    client = openai.AsyncOpenAI(base_url=url, api_key="sk-up", max_retries=0)
    return client, _with_backoff(client, "gpt-4o-mini")


def _through(port: int) -> tuple[openai.AsyncOpenAI, Send]:
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0)
    return client, _create(client, "summarise")


def summary(o: Outcome) -> str:
    ok = len(o.latencies) / o.requests if o.requests else 0.0
    return (
        f"{o.requests} requests, {ok:.2%} ok, p50 {o.percentile(0.5):.2f} s,"
        f" p95 {o.percentile(0.95):.2f} s, p99 {o.percentile(0.99):.2f} s,"
        f" 429s seen {o.client_429s}, amplification {o.upstream / max(o.requests, 1):.2f}"
    )


def render(
    outcomes: list[Outcome],
    primary_p99: float,
    duration: float,
    users: int,
    load: tuple[float, float] | None = None,
) -> str:
    lockgate = outcomes[-1]
    ok = len(lockgate.latencies) / max(lockgate.requests, 1)
    amplification = lockgate.upstream / max(lockgate.requests, 1)
    checks = [
        (">= 99.9% of user requests succeed", f"{ok:.2%}", ok >= 0.999),
        ("zero client-visible 429s", str(lockgate.client_429s), lockgate.client_429s == 0),
        ("amplification <= 1.15", f"{amplification:.2f}", amplification <= 1.15),
        (
            f"p99 <= half the primary's own p99 ({primary_p99:.1f} s)",
            f"{lockgate.percentile(0.99):.2f} s",
            lockgate.percentile(0.99) <= primary_p99 / 2,
        ),
    ]
    lines = [
        "## Seed scenario",
        "",
        f"Written by `bench/seed_scenario.py --duration {duration:g} --users {users}`"
        f" on {time.strftime('%Y-%m-%d %H:%M %Z')}. {users} users, each sending its next"
        f" request when the previous ends, for {duration:g} s per mode. Primary: 20 req/s,"
        " lognormal latency (median 1.5 s, p99 20 s), 2% 500s, a 30 s outage in the middle;"
        " secondary (dearer): 20 req/s, lognormal (median 1 s, p99 5 s). Latencies are of"
        " successful requests. Amplification: upstream requests (both providers) per user"
        " request."
        + (
            f" Machine load (1-minute load average; {os.cpu_count()} cores shared with other"
            f" work): {load[0]:.2f} at the start, {load[1]:.2f} at the end."
            if load is not None
            else ""
        ),
        "",
        "| mode | user requests | success | p50 | p95 | p99 | client 429s | failures |"
        " amplification |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for o in outcomes:
        failures = ", ".join(f"{k}: {v}" for k, v in sorted(o.failures.items())) or "none"
        lines.append(
            f"| {o.mode} | {o.requests:,} | {len(o.latencies) / max(o.requests, 1):.2%} |"
            f" {o.percentile(0.5):.2f} s | {o.percentile(0.95):.2f} s |"
            f" {o.percentile(0.99):.2f} s | {o.client_429s} | {failures} |"
            f" {o.upstream / max(o.requests, 1):.2f} |"
        )
    lines += ["", "| target for (c) | measured | result |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {'PASS' if p else '**FAIL**'} |" for t, m, p in checks]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=120.0)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    import tempfile

    start_load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="lockgate-seed-") as tmp:
        outcomes, primary_p99 = asyncio.run(run(args.duration, args.users, Path(tmp)))
    load = (start_load, os.getloadavg()[0])
    text = render(outcomes, primary_p99, args.duration, args.users, load)
    print(text)
    if not args.no_write:
        benchlib.write_section(RESULTS, "seed-scenario", text)
        print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

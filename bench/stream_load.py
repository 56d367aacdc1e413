"""Streaming load client: concurrent SSE chat completions for a bounded time.

Each of `--concurrency` workers posts `stream: true` chat requests back to back and times
the first `data:` chunk (time to first token, TTFT) and the whole stream. Streams must end
with `data: [DONE]`; anything else counts as an error. Prints one JSON line:

    python bench/stream_load.py --url http://127.0.0.1:4000/v1/chat/completions \\
        --concurrency 16 --duration 10 [--warmup 1] [--model gpt-4o-mini] [--key sk-bench]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from dataclasses import dataclass, field

import aiohttp
import orjson

from benchlib import CHAT_REQUEST


@dataclass
class Stats:
    ttft: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None

    def error(self, what: str) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = what


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of `values`; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


async def one_stream(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], stats: Stats
) -> None:
    started = time.perf_counter()
    first: float | None = None
    tail = b""
    async with session.post(url, data=body, headers=headers) as resp:
        if resp.status != 200:
            stats.error(f"status {resp.status}: {(await resp.read())[:200]!r}")
            return
        async for piece in resp.content.iter_any():
            if first is None and b"data:" in tail + piece:
                first = time.perf_counter() - started
            tail = (tail + piece)[-64:]
    if first is None or not tail.rstrip().endswith(b"data: [DONE]"):
        stats.error(f"incomplete stream, ends with {tail!r}")
        return
    stats.ttft.append(first)
    stats.total.append(time.perf_counter() - started)


async def worker(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    deadline: float,
    stats: Stats,
) -> None:
    while time.perf_counter() < deadline:
        try:
            await one_stream(session, url, body, headers, stats)
        except (aiohttp.ClientError, TimeoutError) as exc:
            stats.error(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(0.01)


async def run_phase(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    concurrency: int,
    seconds: float,
) -> Stats:
    stats = Stats()
    deadline = time.perf_counter() + seconds
    workers = [worker(session, url, body, headers, deadline, stats) for _ in range(concurrency)]
    # Hard bound: a stuck stream cannot keep the client alive past the phase plus 30 s.
    await asyncio.wait_for(asyncio.gather(*workers), timeout=seconds + 30)
    return stats


async def run(args: argparse.Namespace) -> dict[str, object]:
    body = orjson.dumps({**CHAT_REQUEST, "model": args.model, "stream": True})
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {args.key}"}
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if args.warmup > 0:
            await run_phase(
                session, args.url, body, headers, concurrency=args.concurrency, seconds=args.warmup
            )
        started = time.perf_counter()
        stats = await run_phase(
            session, args.url, body, headers, concurrency=args.concurrency, seconds=args.duration
        )
        elapsed = time.perf_counter() - started
    ms = 1000.0
    return {
        "concurrency": args.concurrency,
        "duration_s": round(elapsed, 3),
        "streams": len(stats.ttft),
        "streams_per_s": round(len(stats.ttft) / elapsed, 1),
        "errors": stats.errors,
        "first_error": stats.first_error,
        "ttft_p50_ms": percentile(stats.ttft, 50) * ms,
        "ttft_p90_ms": percentile(stats.ttft, 90) * ms,
        "ttft_p99_ms": percentile(stats.ttft, 99) * ms,
        "total_p50_ms": percentile(stats.total, 50) * ms,
        "total_p99_ms": percentile(stats.total, 99) * ms,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description="SSE streaming load client (TTFT)")
    parser.add_argument("--url", required=True)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument("--model", default="gpt-4o-mini")
    parser.add_argument("--key", default="sk-bench")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(run(args))
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            result = runner.run(run(args))
    sys.stdout.write("STREAMJSON " + orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The load generator: open loop at a request rate, or closed loop at a concurrency.

Open loop never suffers coordinated omission: each request has a scheduled send time
(fixed spacing or Poisson arrivals) and its latency counts from that time, so a slow
server or a full client connection pool shows up in the latency instead of silently
lowering the load.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from lockgate.core.tasks import TaskTracker
from lockgate.profiler.options import BenchOptions

# Headers worth keeping from each response: lockgate's own and the advertised limits.
_KEPT_PREFIXES = ("x-lockgate-", "x-ratelimit-", "retry-after")


@dataclass(slots=True)
class Sample:
    """One request as the client saw it."""

    scheduled: float  # monotonic send time it was due at
    status: int = 0  # HTTP status; 0: no response (connection error or timeout)
    error: str | None = None  # what went wrong when there was no usable answer
    latency: float = 0.0  # seconds from ``scheduled`` to the end of the answer
    ttft: float | None = None  # seconds from ``scheduled`` to the first streamed token
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    model: str | None = None  # the model the answer names
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None


Observer = Callable[[Sample], None]


async def send(
    session: aiohttp.ClientSession, url: str, body: bytes, scheduled: float, stream: bool
) -> Sample:
    sample = Sample(scheduled=scheduled)
    try:
        async with session.post(url, data=body) as resp:
            sample.status = resp.status
            sample.headers = {
                k.lower(): v
                for k, v in resp.headers.items()
                if k.lower().startswith(_KEPT_PREFIXES)
            }
            if resp.status != 200:
                await resp.read()
                sample.error = f"HTTP {resp.status}"
            elif stream:
                await _read_stream(resp, sample)
            else:
                _read_answer(orjson.loads(await resp.read()), sample)
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
        sample.error = type(exc).__name__
    sample.latency = time.monotonic() - scheduled
    return sample


def _read_answer(data: Any, sample: Sample) -> None:
    if not isinstance(data, dict):
        sample.error = "malformed answer"
        return
    sample.model = data.get("model") if isinstance(data.get("model"), str) else None
    _read_usage(data.get("usage"), sample)


def _read_usage(usage: Any, sample: Sample) -> None:
    if isinstance(usage, dict):
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        sample.prompt_tokens = prompt if isinstance(prompt, int) else None
        sample.completion_tokens = completion if isinstance(completion, int) else None


async def _read_stream(resp: aiohttp.ClientResponse, sample: Sample) -> None:
    """Server-sent events: TTFT at the first chunk that carries content, usage from the
    final chunk (the profiler asks for it with ``stream_options.include_usage``)."""
    done = False
    async for raw in resp.content:
        line = raw.strip()
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if payload == b"[DONE]":
            done = True
            break
        event = orjson.loads(payload)
        if not isinstance(event, dict):
            continue
        if "error" in event:
            sample.error = "stream error"
            return
        if sample.model is None and isinstance(event.get("model"), str):
            sample.model = event["model"]
        if sample.ttft is None and _has_token(event):
            sample.ttft = time.monotonic() - sample.scheduled
        if event.get("usage"):
            _read_usage(event["usage"], sample)
    if not done:
        sample.error = "stream cut off"


def _has_token(event: dict[str, Any]) -> bool:
    for choice in event.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls") or delta.get("reasoning_content"):
            return True
    return False


def arrival_offsets(options: BenchOptions, rng: random.Random) -> Iterator[float]:
    """Seconds from the start at which each request is due (computed from the start, not
    summed gap by gap, so fixed arrivals do not drift)."""
    assert options.rps is not None
    at = 0.0
    for n in itertools.count(1):
        if options.arrivals == "fixed":
            yield n / options.rps
        else:
            at += rng.expovariate(options.rps)
            yield at


async def run_load(
    options: BenchOptions, bodies: Iterator[bytes], observe: Observer, tasks: TaskTracker
) -> float:
    """Send the load for ``options.duration`` seconds, wait for what is in flight, and
    return the monotonic start time. Each finished request goes to ``observe``."""
    headers = {"content-type": "application/json"}
    if options.api_key:
        headers["authorization"] = f"Bearer {options.api_key}"
    limit = options.concurrency or options.max_in_flight
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, force_close=False)
    timeout = aiohttp.ClientTimeout(total=options.timeout)
    async with aiohttp.ClientSession(
        connector=connector, headers=headers, timeout=timeout, raise_for_status=False
    ) as session:
        start = time.monotonic()
        end = start + options.duration
        url, stream = options.endpoint, options.stream

        async def one(body: bytes, scheduled: float) -> None:
            observe(await send(session, url, body, scheduled, stream))

        if options.rps is not None:
            pending: set[asyncio.Task[Any]] = set()
            for offset in arrival_offsets(options, random.Random(options.seed)):
                due = start + offset
                if offset >= options.duration:
                    break
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = tasks.spawn(one(next(bodies), due), name="bench-request")
                pending.add(task)
                task.add_done_callback(pending.discard)
            if pending:
                await asyncio.wait(set(pending))
        else:

            async def worker() -> None:
                while time.monotonic() < end:
                    await one(next(bodies), time.monotonic())

            workers = [
                tasks.spawn(worker(), name=f"bench-worker-{i}")
                for i in range(options.concurrency or 1)
            ]
            await asyncio.wait(workers)
    return start

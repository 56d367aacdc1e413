"""Fixtures for the rate-limit and budget engines: a settable clock, engines by backend."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from lockgate.config.schema import RedisConfig
from lockgate.core.tasks import TaskTracker
from lockgate.features.budgets import LocalBudgets
from lockgate.features.budgets_redis import RedisBudgets
from lockgate.features.limit_metrics import LimitMetrics
from lockgate.features.ratelimit import LocalRateLimiter
from lockgate.features.ratelimit_redis import RedisRateLimiter
from lockgate.storage.redis import SharedRedis


class Clock:
    """Seconds since the epoch, moved only by the test."""

    def __init__(self, at: datetime = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)) -> None:
        self.now = at.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def set(self, at: datetime) -> None:
        self.now = at.timestamp()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def metrics() -> LimitMetrics:
    return LimitMetrics()


SharedFactory = Callable[..., SharedRedis]


@pytest.fixture
async def shared_redis(redis_prefix: str) -> AsyncIterator[SharedFactory]:
    """SharedRedis clients (one per simulated replica) under this test's prefix; the
    test's keys are deleted afterwards."""
    clients: list[SharedRedis] = []

    def factory(url: str, **options: Any) -> SharedRedis:
        cfg = RedisConfig.model_validate({"url": url, "prefix": redis_prefix, **options})
        shared = SharedRedis(cfg)
        clients.append(shared)
        return shared

    yield factory
    for shared in clients:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                keys = [k async for k in shared.client.scan_iter(match=f"{redis_prefix}*")]
                if keys:
                    await shared.client.delete(*keys)
        await shared.close()


@pytest.fixture(params=["local", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_limiter(
    backend: str, request: pytest.FixtureRequest, clock: Clock, metrics: LimitMetrics
) -> Callable[[], LocalRateLimiter | RedisRateLimiter]:
    """Rate limiters of the test's backend; several Redis ones are several replicas."""
    if backend == "local":
        return lambda: LocalRateLimiter(metrics=metrics, clock=clock)
    url = request.getfixturevalue("redis_url")
    shared: SharedFactory = request.getfixturevalue("shared_redis")
    return lambda: RedisRateLimiter(shared(url), tasks=TaskTracker(), metrics=metrics, clock=clock)


@pytest.fixture
def make_budgets(
    backend: str, request: pytest.FixtureRequest, clock: Clock, metrics: LimitMetrics
) -> Callable[..., LocalBudgets | RedisBudgets]:
    if backend == "local":
        return lambda **kw: LocalBudgets(metrics=metrics, clock=clock, **kw)
    url = request.getfixturevalue("redis_url")
    shared: SharedFactory = request.getfixturevalue("shared_redis")
    return lambda **kw: RedisBudgets(
        shared(url), tasks=TaskTracker(), metrics=metrics, clock=clock, **kw
    )


class Switch:
    """A TCP forwarder to a real server on a fixed loopback port, switched off and on:
    what a client sees when Redis goes away and comes back."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def on(self) -> None:
        self._server = await asyncio.start_server(
            self._pipe, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def off(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        self._server = None

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))
        self._writers -= {writer, up_writer}


@dataclass
class Silent:
    """A server that accepts connections and never answers: a hung Redis."""

    port: int = 0
    connections: int = 0


@pytest.fixture
async def silent_server() -> AsyncIterator[Silent]:
    silent = Silent()
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent.connections += 1
        held.append(writer)
        with contextlib.suppress(OSError):
            await reader.read()  # until the client gives up

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    silent.port = server.sockets[0].getsockname()[1]
    yield silent
    server.close()
    for writer in held:
        writer.close()
    await server.wait_closed()


def closed_port() -> int:
    """A loopback port nothing listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def refusing_server() -> AsyncIterator[int]:
    """A port that speaks Redis's protocol and refuses every command, as a proxy that does
    not run scripts does: each command (a RESP array) gets ``-ERR unknown command``."""

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, ValueError):
            while True:
                header = await reader.readline()
                if not header:
                    break
                for _ in range(int(header[1:])):  # "*N": N bulk strings "$len" + data
                    size = int((await reader.readline())[1:])
                    await reader.readexactly(size + 2)
                writer.write(b"-ERR unknown command, this proxy does not run scripts\r\n")
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()

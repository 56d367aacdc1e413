"""Shared fixtures: the blocking-call guard, the simulator, gateways on real sockets."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import openai
import pytest
from aiohttp import web
from blockbuster import BlockBuster, blockbuster_ctx

# build_app imports Redis's and asyncpg's modules only when a config names them; loaded
# here, their file reads happen before blockbuster watches the tests' event loops.
import lockgate.compiled
import lockgate.features.budgets_redis
import lockgate.features.ratelimit_redis
import lockgate.features.replicas
import lockgate.storage.pg_connect
from lockgate.api.front.site import FrontSite
from lockgate.app import build_app
from lockgate.config.loader import parse_config
from lockgate.providers.simulator import Simulator, SimulatorOptions
from lockgate.state import STATE, GatewayState

HELLO = [{"role": "user", "content": "hello"}]
MASTER_KEY = "sk-lockgate-test-master-0123456789"
PROVIDER_KEY = "sk-provider-secret-abcdefghijklmnop"


def pytest_sessionstart(session: pytest.Session) -> None:
    """Stop before any test runs old code: an edited module's build would load instead."""
    old = lockgate.compiled.stale()
    if old:
        pytest.exit(f"compiled modules older than their sources: {old}; run `make compiled`", 2)


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """Fail any test in which something blocks the event loop."""
    with blockbuster_ctx(scanned_modules=["lockgate", "tests"]) as bb:
        # The SDKs read certificates and package metadata (anthropic's also its credential
        # files) when a client is built: that is the test's client set-up, not the
        # gateway's event loop work.
        for function in bb.functions.values():
            function.can_block_in("openai/_base_client.py", "__init__")
            function.can_block_in("anthropic/_base_client.py", "__init__")
            function.can_block_in("anthropic/_client.py", "__init__")
        yield bb


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    sim = Simulator(SimulatorOptions(api_key=PROVIDER_KEY, seed=7))
    await sim.start(host="127.0.0.1", port=0)
    yield sim
    await sim.stop()


@dataclass
class Gateway:
    url: str  # http://127.0.0.1:PORT
    app: web.Application
    runner: web.AppRunner | None = None

    async def stop(self) -> None:
        """Shut down as at SIGTERM: stop listening, drain, run the cleanups."""
        if self.runner is not None and self.runner.server is not None:
            await self.runner.cleanup()

    @property
    def state(self) -> GatewayState:
        return self.app[STATE]

    def client(self, api_key: str = MASTER_KEY, **kwargs: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=f"{self.url}/v1", api_key=api_key, max_retries=0, **kwargs
        )


GatewayFactory = Callable[..., Awaitable[Gateway]]


def one_model(api_base: str, name: str = "gpt-4o-mini", **deployment: Any) -> dict[str, Any]:
    return {
        "name": name,
        "deployments": [
            {
                "provider": "openai",
                "model": name,
                "api_base": api_base,
                "api_key": PROVIDER_KEY,
                **deployment,
            }
        ],
    }


@pytest.fixture
async def make_gateway() -> AsyncIterator[GatewayFactory]:
    runners: list[web.AppRunner] = []

    async def factory(
        models: list[dict[str, Any]],
        retry: dict[str, Any] | None = None,
        cooldown: dict[str, Any] | None = None,
        sections: dict[str, Any] | None = None,
        **server: Any,
    ) -> Gateway:
        """A gateway on a real socket; ``sections`` adds other top-level config sections.
        No database unless ``sections`` gives one (tests of the ledger do)."""
        # Short backoff so tests stay quick; the retry tests set what they assert on.
        retry_cfg = {"backoff_base": 0.01, **(retry or {})}
        config = parse_config(
            {
                "server": {"master_key": MASTER_KEY, **server},
                "retry": retry_cfg,
                "cooldown": cooldown or {},
                "models": models,
                "database": None,
                **(sections or {}),
            },
            env={},
        )
        app = build_app(config)
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await runner.setup()
        site = FrontSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = site.port
        return Gateway(url=f"http://127.0.0.1:{port}", app=app, runner=runner)

    yield factory
    for runner in runners:
        if runner.server is not None:  # not stopped by its test
            await runner.cleanup()


@pytest.fixture
async def gateway(make_gateway: GatewayFactory, simulator: Simulator) -> Gateway:
    base = simulator.base_url
    return await make_gateway([one_model(base), one_model(base, "text-embedding-3-small")])


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[openai.AsyncOpenAI]:
    async with gateway.client() as c:
        yield c


def _service_url(name: str) -> str:
    """A real service's URL from LOCKGATE_TEST_<NAME>_URL. CI sets them and
    LOCKGATE_REQUIRE_SERVICES=1, so there a missing or unreachable service fails the run;
    elsewhere the tests that need it are skipped."""
    url = os.environ.get(f"LOCKGATE_TEST_{name}_URL")
    required = os.environ.get("LOCKGATE_REQUIRE_SERVICES") == "1"
    if not url:
        if required:
            pytest.fail(f"LOCKGATE_TEST_{name}_URL is not set")
        pytest.skip(f"LOCKGATE_TEST_{name}_URL is not set")
    host, port = _host_port(url)
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        if required:
            pytest.fail(f"{name.lower()} at {host}:{port} is unreachable: {exc}")
        pytest.skip(f"{name.lower()} at {host}:{port} is unreachable")
    return url


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    default = {"redis": 6379, "postgresql": 5432}.get(parts.scheme.split("+")[0], 0)
    return parts.hostname or "127.0.0.1", parts.port or default


@pytest.fixture(scope="session")
def redis_url() -> str:
    return _service_url("REDIS")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    return _service_url("POSTGRES")


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of this test's own: tests share one Redis and never flush it."""
    return f"lgtest:{uuid.uuid4().hex[:12]}:"


SimFactory = Callable[..., Awaitable[Simulator]]


@pytest.fixture
async def make_sim() -> AsyncIterator[SimFactory]:
    """Simulators with the given fault options, each on its own port."""
    sims: list[Simulator] = []

    async def factory(**options: Any) -> Simulator:
        sim = Simulator(SimulatorOptions(**{"api_key": PROVIDER_KEY, "seed": 1, **options}))
        await sim.start(host="127.0.0.1", port=0)
        sims.append(sim)
        return sim

    yield factory
    for sim in sims:
        await sim.stop()


def dep(sim: Simulator, id_: str, model: str = "gpt-4o-mini") -> dict[str, Any]:
    """A deployment on ``sim`` with a fixed id (what x-lockgate-deployment shows)."""
    return {
        "provider": "openai",
        "model": model,
        "id": id_,
        "api_base": sim.base_url,
        "api_key": PROVIDER_KEY,
    }


def chats(sim: Simulator) -> int:
    """Chat requests that reached ``sim``."""
    return sim.counts["/v1/chat/completions"]


async def wait_until(predicate: Callable[[], bool], seconds: float = 3.0) -> None:
    """Poll ``predicate`` until it holds; fail the test when it does not within ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)

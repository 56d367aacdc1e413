"""Shared state when Redis is unreachable or goes away: every replica keeps serving on its
own state, quickly, says so once in the log and in metrics, and shares again when Redis
is back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.conftest import HELLO, MASTER_KEY, GatewayFactory, SimFactory, chats, dep, wait_until

ASK = [{"role": "user", "content": "Summarise the plot of Hamlet."}]


async def test_unreachable_redis_costs_nothing_but_sharing(
    make_gateway: GatewayFactory,
    make_sim: SimFactory,
    redis_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken, healthy = await make_sim(error_rates={500: 1.0}), await make_sim(latency="100ms")
    redis = {"url": "redis://127.0.0.1:1/0", "prefix": redis_prefix, "socket_timeout": 0.2,
             "sync_interval": 0.1}  # fmt: skip
    models = [
        {"name": "m", "deployments": [{**dep(broken, "a"), "weight": 1000}, dep(healthy, "b")]}
    ]
    with caplog.at_level(logging.WARNING, logger="lockgate.shared"):
        gw = await make_gateway(
            models, sections={"redis": redis}, cooldown={"consecutive_failures": 1}
        )
        await wait_until(lambda: gw.state.replicas is not None and gw.state.replicas.link.errors)
        async with gw.client() as client:
            for temperature in (0, 0, 0.7, 0):  # coalescible ones too
                started = time.perf_counter()
                reply = await client.chat.completions.create(
                    model="m", messages=ASK, temperature=temperature
                )
                assert reply.choices[0].message.content
                assert time.perf_counter() - started < 1.0
            # Concurrent identical requests still share a call within the replica.
            await asyncio.gather(
                *(client.chat.completions.create(model="m", messages=HELLO, temperature=0)
                  for _ in range(4))
            )  # fmt: skip
        await asyncio.sleep(0.3)  # a few more failed reconnections
    assert chats(broken) == 1  # the breaker still works, on this replica's own state
    assert chats(healthy) == 5
    assert gw.state.metrics.coalesced["m"] == 3
    async with aiohttp.ClientSession() as http:
        resp = await http.get(f"{gw.url}/metrics")
        text = await resp.text()
    assert "lockgate_shared_state_up 0.0" in text
    assert 'lockgate_shared_state_errors_total{operation="listen"}' in text
    assert 'lockgate_shared_coalesce_total{outcome="alone"} 4.0' in text
    warnings = [r for r in caplog.records if "shared state unavailable" in r.getMessage()]
    assert len(warnings) <= 1  # logged once, not once per retry
    assert "127.0.0.1:1" not in caplog.text


async def test_a_redis_that_never_answers_does_not_hang_requests(
    make_gateway: GatewayFactory, make_sim: SimFactory, redis_prefix: str
) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while await reader.read(65536):
                pass  # accepts every command, answers none
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    upstream = await make_sim(latency="50ms")
    redis = {"url": f"redis://127.0.0.1:{port}/0", "prefix": redis_prefix,
             "socket_timeout": 0.2}  # fmt: skip
    gw = await make_gateway(
        [{"name": "m", "deployments": [dep(upstream, "a")]}], sections={"redis": redis}
    )
    try:
        async with gw.client() as client:
            for temperature in (0, 0.7, 0):
                started = time.perf_counter()
                await client.chat.completions.create(
                    model="m", messages=ASK, temperature=temperature
                )
                assert time.perf_counter() - started < 1.5
        assert gw.state.replicas is not None
        assert not gw.state.replicas.link.up
        assert chats(upstream) == 3
    finally:
        server.close()


class _Proxy:
    """A TCP proxy to Redis that the test can cut (closing every connection) and restore."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


async def test_redis_going_away_and_coming_back(
    make_gateway: GatewayFactory, make_sim: SimFactory, redis_url: str, redis_prefix: str
) -> None:
    proxy = _Proxy(redis_url)
    await proxy.start()
    upstream = await make_sim(latency="50ms")
    redis = {"url": f"redis://127.0.0.1:{proxy.port}/0", "prefix": redis_prefix,
             "socket_timeout": 0.2, "sync_interval": 0.1}  # fmt: skip
    gw = await make_gateway(
        [{"name": "m", "deployments": [dep(upstream, "a")]}], sections={"redis": redis}
    )
    replicas = gw.state.replicas
    assert replicas is not None
    await wait_until(lambda: replicas.link.up)
    await proxy.cut()
    async with gw.client() as client:
        await wait_until(lambda: not replicas.link.up)
        started = time.perf_counter()
        await client.chat.completions.create(model="m", messages=ASK, temperature=0)
        assert time.perf_counter() - started < 1.0
        assert replicas.coalescer.outcomes.get("alone") == 1
        await proxy.start()  # the same port again
        await wait_until(lambda: replicas.link.up, seconds=5)
        await client.chat.completions.create(model="m", messages=ASK, temperature=0)
    assert replicas.coalescer.outcomes.get("led") == 1  # shared again
    assert chats(upstream) == 2
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    async with aiohttp.ClientSession() as http:
        text = await (await http.get(f"{gw.url}/metrics", headers=headers)).text()
    assert "lockgate_shared_state_up 1.0" in text
    await proxy.cut()

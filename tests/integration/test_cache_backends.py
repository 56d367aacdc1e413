"""The cache's shared and persistent backends: Redis (several gateways share answers; Redis
trouble is an ordinary miss, never a failure) and SQLite (answers outlive the process)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from tests.conftest import MASTER_KEY, Gateway, GatewayFactory, SimFactory, chats, dep, wait_until
from tests.integration.cache_helpers import ASK


async def _ask(gw: Gateway, **extra: object) -> str:
    async with gw.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="m", messages=ASK, temperature=0, **extra
        )
    return str(raw.headers["x-lockgate-cache"])


async def _entries(gw: Gateway) -> int:
    cache = gw.state.pipeline.cache
    assert cache is not None
    return (await cache.backend.stats()).get("entries", 0)


async def test_two_gateways_share_one_redis_cache(
    make_gateway: GatewayFactory, make_sim: SimFactory, redis_url: str, redis_prefix: str
) -> None:
    upstream = await make_sim()
    sections = {"redis": {"url": redis_url, "prefix": redis_prefix}, "cache": {"backend": "redis"}}
    models = [{"name": "m", "deployments": [dep(upstream, "a")]}]
    one = await make_gateway(models, sections=sections)
    two = await make_gateway(models, sections=sections)
    assert await _ask(one) == "miss"
    # The write is a background task: wait until Redis holds it, then ask the other replica.
    for _ in range(150):
        if await _entries(two):
            break
        await asyncio.sleep(0.02)
    assert await _entries(two) == 1
    assert await _ask(two) == "hit"
    assert await _ask(one, stream=True) == "hit"
    assert chats(upstream) == 1

    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    url = f"{two.url}/admin/cache?model=m"
    async with aiohttp.ClientSession() as http, http.delete(url, headers=headers) as resp:
        assert (await resp.json())["purged"] == 1
    assert await _ask(one) == "miss"
    assert chats(upstream) == 2
    await wait_until(lambda: one.state.tasks.running("cache-write") == 0)
    await one.state.pipeline.cache.purge(None, None)  # type: ignore[union-attr]


async def test_an_unreachable_redis_is_a_miss_not_a_failure(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    upstream = await make_sim()
    sections = {
        "redis": {"url": "redis://127.0.0.1:1/0", "socket_timeout": 0.1},
        "cache": {"backend": "redis"},
    }
    gw = await make_gateway([{"name": "m", "deployments": [dep(upstream, "a")]}], sections=sections)
    started = time.perf_counter()
    for _ in range(2):
        assert await _ask(gw) == "miss"
    assert chats(upstream) == 2
    assert time.perf_counter() - started < 5
    await wait_until(lambda: gw.state.tasks.running("cache-") == 0)


async def test_sqlite_cache_outlives_the_gateway(
    make_gateway: GatewayFactory, make_sim: SimFactory, tmp_path: Path
) -> None:
    upstream = await make_sim()
    path = str(tmp_path / "cache.sqlite3")
    sections = {"cache": {"backend": "sqlite", "path": path}}
    models = [{"name": "m", "deployments": [dep(upstream, "a")]}]
    first = await make_gateway(models, sections=sections)
    assert await _ask(first) == "miss"
    await wait_until(lambda: first.state.tasks.running("cache-") == 0)
    assert await _ask(first) == "hit"
    await first.state.pipeline.cache.close()  # type: ignore[union-attr]

    second = await make_gateway(models, sections=sections)  # a new process, the same file
    assert await _ask(second, stream=True) == "hit"
    assert chats(upstream) == 1
    assert await _entries(second) == 1
    assert await second.state.pipeline.cache.purge("default", None) == 1  # type: ignore[union-attr]
    assert await _ask(second) == "miss"

"""Learned rate limits shared by two replicas through a real Redis: together they stay
within the provider's limit instead of each assuming it has all of it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from lockgate.config.schema import RedisConfig
from lockgate.providers.simulator import Simulator
from lockgate.storage.redis import SharedRedis
from tests.conftest import HELLO, Gateway, GatewayFactory, SimFactory, dep
from tests.integration.replica_pair import replica_pair

# 600 RPM, of which the provider holds one second's worth (10 requests) at a time.
LIMITED = {"rpm": 600, "burst_seconds": 1, "latency": "10ms"}


@pytest.fixture(autouse=True)
async def _forget_learned_limits(redis_url: str, redis_prefix: str) -> AsyncIterator[None]:
    """Learned limits are kept a day for replicas that start later: not this test's."""
    yield
    redis = SharedRedis(RedisConfig.model_validate({"url": redis_url, "prefix": redis_prefix}))
    try:
        keys = [k async for k in redis.client.scan_iter(match=f"{redis_prefix}*")]
        if keys:
            await redis.client.delete(*keys)
    finally:
        await redis.close()


async def _load(gateways: tuple[Gateway, ...], seconds: float, workers: int) -> int:
    """Closed-loop traffic on every gateway; returns how many requests succeeded."""
    ok = 0
    stop = time.monotonic() + seconds

    async def worker(client: openai.AsyncOpenAI) -> None:
        nonlocal ok
        while time.monotonic() < stop:
            try:
                await client.chat.completions.create(model="m", messages=HELLO)
                ok += 1
            except openai.APIStatusError:
                await asyncio.sleep(0.05)

    clients = [g.client() for g in gateways]
    try:
        await asyncio.gather(*(worker(c) for c in clients for _ in range(workers)))
    finally:
        for c in clients:
            await c.close()
    return ok


def _models(sim: Simulator) -> list[dict[str, Any]]:
    return [{"name": "m", "deployments": [dep(sim, "a")], "retries": 0}]


async def test_replicas_sharing_redis_split_the_learned_limit(
    make_gateway: GatewayFactory, make_sim: SimFactory, redis_url: str, redis_prefix: str
) -> None:
    alone_sim, shared_sim = await make_sim(**LIMITED), await make_sim(**LIMITED)
    alone = (
        await make_gateway(_models(alone_sim)),
        await make_gateway(_models(alone_sim)),
    )
    shared = await replica_pair(make_gateway, _models(shared_sim), redis_url, redis_prefix)
    for gateway in (*alone, *shared):  # each replica learns the limit from a first answer
        async with gateway.client() as client:
            await client.chat.completions.create(model="m", messages=HELLO)
    await asyncio.sleep(1.1)
    alone_sim.reset()
    shared_sim.reset()
    served_alone, served_shared = await asyncio.gather(
        _load(alone, 3.0, workers=8), _load(shared, 3.0, workers=8)
    )
    refused_alone, refused_shared = alone_sim.statuses[429], shared_sim.statuses[429]
    # Each lone replica learns "600 RPM" and spends it all; sharing, each takes half.
    assert refused_alone >= 3
    assert refused_shared * 3 <= refused_alone, (refused_shared, refused_alone)
    assert served_shared >= 30  # and the limit is used, not left idle
    for gateway in shared:
        bucket = gateway.state.pipeline.router.groups()[0].deployments[0].admission.requests
        assert bucket is not None and bucket.share == 0.5
    assert served_alone >= 1


async def test_a_limit_learned_by_one_replica_is_adopted_by_the_other(
    make_gateway: GatewayFactory, make_sim: SimFactory, redis_url: str, redis_prefix: str
) -> None:
    sim = await make_sim(**LIMITED)
    a, b = await replica_pair(make_gateway, _models(sim), redis_url, redis_prefix)
    async with a.client() as client:
        await client.chat.completions.create(model="m", messages=HELLO)
    admission = b.state.pipeline.router.groups()[0].deployments[0].admission
    for _ in range(100):
        if admission.requests is not None:
            break
        await asyncio.sleep(0.02)
    assert admission.requests is not None  # B learned it without a call of its own
    assert admission.requests.limit == 600
    assert admission.requests.room == 5  # half of the ten the provider holds
    assert sim.counts["/v1/chat/completions"] == 1

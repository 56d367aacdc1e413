"""The shared Redis client against a real Redis."""

from __future__ import annotations

import time

import pytest

from lockgate.config.schema import RedisConfig
from lockgate.storage.redis import SharedRedis
from tests.conftest import GatewayFactory


async def test_keys_live_under_the_prefix(redis_url: str, redis_prefix: str) -> None:
    # What is tested is the prefix: a slow first connect on a loaded CI machine (the 0.25 s
    # default timed out once) must not fail it.
    shared = SharedRedis(
        RedisConfig.model_validate({"url": redis_url, "prefix": redis_prefix, "socket_timeout": 2})
    )
    try:
        key = shared.key("probe", "1")
        assert key == f"{redis_prefix}probe:1"
        await shared.client.set(key, b"x", px=5_000)
        assert await shared.client.get(key) == b"x"
        await shared.client.delete(key)
    finally:
        await shared.close()


async def test_an_unreachable_redis_fails_fast() -> None:
    # A closed port on loopback: the command must fail within the socket timeout, not hang.
    shared = SharedRedis(
        RedisConfig.model_validate({"url": "redis://127.0.0.1:1/0", "socket_timeout": 0.2})
    )
    started = time.perf_counter()
    try:
        with pytest.raises(Exception, match=r"(?i)connect"):
            await shared.client.ping()
    finally:
        await shared.close()
    assert time.perf_counter() - started < 2


async def test_the_gateway_opens_and_closes_its_redis(
    make_gateway: GatewayFactory, redis_url: str, redis_prefix: str
) -> None:
    gw = await make_gateway([], sections={"redis": {"url": redis_url, "prefix": redis_prefix}})
    assert gw.state.redis is not None
    assert await gw.state.redis.client.ping()

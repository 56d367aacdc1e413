"""The shared Redis client: one connection pool per gateway, short timeouts, keys prefixed."""

from __future__ import annotations

from importlib.metadata import version

from redis.asyncio import Redis
from redis.driver_info import DriverInfo

from lockgate.config.schema import RedisConfig

# redis-py looks its own version up on disk for every new connection unless told it once
# (a blocking stat in the event loop); read at import time instead.
_DRIVER = DriverInfo(name="redis-py", lib_version=version("redis"))


class SharedRedis:
    """A Redis client plus the key prefix every lockgate key lives under.

    Commands time out after ``socket_timeout``; callers treat a Redis error as "shared state
    unavailable" and fall back to their in-process state, so Redis trouble never takes
    requests down with it."""

    def __init__(self, cfg: RedisConfig) -> None:
        self.prefix = cfg.prefix
        self.socket_timeout = cfg.socket_timeout
        self.client: Redis = Redis.from_url(
            cfg.url.get_secret_value(),
            socket_timeout=cfg.socket_timeout,
            socket_connect_timeout=cfg.socket_timeout,
            health_check_interval=30,
            driver_info=_DRIVER,
        )

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def close(self) -> None:
        await self.client.aclose()

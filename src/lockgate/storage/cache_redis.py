"""The response cache in Redis, shared by every replica; fails open to a miss."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from redis.exceptions import RedisError

from lockgate.features.cache.keys import CacheKey, short_hash
from lockgate.storage.redis import SharedRedis

log = logging.getLogger(__name__)
T = TypeVar("T")
_SCAN_BATCH = 500
_VECTORS = "cache-vec"
_REST = 2.0  # seconds without Redis calls after one failed
_WARN_EVERY = 30.0  # seconds between two warnings about the same trouble


class RedisCacheBackend:
    name = "redis"
    slow = True

    def __init__(self, redis: SharedRedis, timeout: float) -> None:
        self._redis = redis
        # A hard bound on each call besides the client's socket timeout: a request never
        # waits longer than this for the cache, whatever Redis does.
        self._timeout = timeout * 4
        self._warned = 0.0
        self._down_until = 0.0  # after a failure, Redis is left alone for a moment

    def _key(self, key: CacheKey) -> str:
        return self._redis.key("cache", key.storage_id())

    async def _guard(self, call: Awaitable[T], what: str) -> T | None:
        if time.monotonic() < self._down_until:
            # A down Redis would cost every request a timeout; skip it while it rests.
            if asyncio.iscoroutine(call):
                call.close()
            return None
        try:
            async with asyncio.timeout(self._timeout):
                return await call
        except (RedisError, OSError, TimeoutError) as exc:
            now = time.monotonic()
            self._down_until = now + _REST
            if now - self._warned > _WARN_EVERY:
                self._warned = now
                log.warning(
                    "cache: redis %s failed (%s); serving without it", what, type(exc).__name__
                )
            return None

    async def get(self, key: CacheKey) -> bytes | None:
        value = await self._guard(self._redis.client.get(self._key(key)), "read")
        return value if isinstance(value, bytes) else None

    async def set(self, key: CacheKey, value: bytes, ttl: float) -> None:
        ms = max(1, int(ttl * 1000))
        await self._guard(self._redis.client.set(self._key(key), value, px=ms), "write")

    def _pattern(self, namespace: str | None, group: str | None, kind: str = "cache") -> str:
        ns = short_hash(namespace) if namespace is not None else "*"
        model = short_hash(group) if group is not None else "*"
        return self._redis.key(kind, f"{ns}:{model}:*")

    async def purge(self, namespace: str | None, group: str | None) -> int:
        removed = 0
        client = self._redis.client
        async for batch in self._scan(self._pattern(namespace, group)):
            removed += await self._guard(client.unlink(*batch), "purge") or 0
        async for batch in self._scan(self._pattern(namespace, group, _VECTORS)):
            await self._guard(client.unlink(*batch), "purge")
        return removed

    # -- the semantic cache's vectors: one hash per neighbourhood, digest -> float32 bytes --

    def _vectors(self, bucket: str, like: CacheKey) -> str:
        ns, model = short_hash(like.namespace), short_hash(like.group)
        return self._redis.key(_VECTORS, f"{ns}:{model}:{bucket}")

    async def put_vector(
        self, bucket: str, key: CacheKey, vector: bytes, ttl: float, limit: int
    ) -> None:
        name, client = self._vectors(bucket, key), self._redis.client

        async def put() -> None:
            if await client.hlen(name) >= limit:
                return
            seconds = max(1, math.ceil(ttl))
            async with client.pipeline(transaction=False) as pipe:
                pipe.hset(name, key.digest, vector)
                # The neighbourhood lives as long as its longest-lived entry (Redis >= 7).
                pipe.expire(name, seconds, nx=True)
                pipe.expire(name, seconds, gt=True)
                await pipe.execute()

        await self._guard(put(), "vector write")

    async def get_vectors(self, bucket: str, like: CacheKey, limit: int) -> dict[str, bytes]:
        found = await self._guard(self._redis.client.hgetall(self._vectors(bucket, like)), "read")
        if not found:
            return {}
        pairs = list(found.items())[:limit]
        return {_text(k): v for k, v in pairs if isinstance(v, bytes)}

    async def drop_vector(self, bucket: str, key: CacheKey) -> None:
        await self._guard(self._redis.client.hdel(self._vectors(bucket, key), key.digest), "write")

    async def stats(self) -> dict[str, int]:
        entries = 0
        async for batch in self._scan(self._pattern(None, None)):
            entries += len(batch)
        return {"entries": entries}

    async def _scan(self, pattern: str) -> AsyncIterator[list[Any]]:
        cursor: int | None = 0
        client = self._redis.client
        while cursor is not None:
            found = await self._guard(
                client.scan(cursor=cursor, match=pattern, count=_SCAN_BATCH), "scan"
            )
            if found is None:
                return
            cursor, keys = found
            if keys:
                yield list(keys)
            if not cursor:
                cursor = None

    async def close(self) -> None:
        """The shared client is closed by its owner."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

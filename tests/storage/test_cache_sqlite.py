"""The SQLite cache backend on a real file: TTL, the byte bound, purges, vectors."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lockgate.features.cache.keys import CacheKey
from lockgate.storage.cache_sqlite import SqliteCacheBackend


def _key(digest: str, namespace: str = "default", group: str = "m") -> CacheKey:
    return CacheKey(namespace, group, digest)


async def test_entries_expire_and_the_file_stays_under_its_bound(tmp_path: Path) -> None:
    backend = SqliteCacheBackend(str(tmp_path / "c.sqlite3"), max_bytes=5 * 1200)
    try:
        await backend.set(_key("short"), b"s" * 1000, ttl=0.2)
        for i in range(8):
            await backend.set(_key(f"k{i}"), b"x" * 1000, ttl=60 + i)
        stats = await backend.stats()
        assert stats["bytes"] <= 5 * 1200
        assert stats["entries"] == 5  # evicted only as many as the bound needed
        for i in range(3, 8):  # the longest-lived stay; the nearest to expiry went first
            assert await backend.get(_key(f"k{i}")) == b"x" * 1000
        assert await backend.get(_key("short")) is None
        await backend.set(_key("soon"), b"y", ttl=0.2)
        await asyncio.sleep(0.4)
        assert await backend.get(_key("soon")) is None
    finally:
        await backend.close()


async def test_purges_by_namespace_and_model_take_vectors_along(tmp_path: Path) -> None:
    backend = SqliteCacheBackend(str(tmp_path / "c.sqlite3"), max_bytes=1 << 20)
    try:
        await backend.set(_key("a", "ns1", "m"), b"1", ttl=60)
        await backend.set(_key("b", "ns2", "m"), b"2", ttl=60)
        await backend.set(_key("c", "ns2", "other"), b"3", ttl=60)
        await backend.put_vector("bucket", _key("b", "ns2", "m"), b"\0" * 16, ttl=60, limit=2)
        await backend.put_vector("bucket", _key("x", "ns2", "m"), b"\0" * 16, ttl=60, limit=2)
        await backend.put_vector("bucket", _key("y", "ns2", "m"), b"\0" * 16, ttl=60, limit=2)
        assert set(await backend.get_vectors("bucket", _key("", "ns2", "m"), 10)) == {"b", "x"}
        assert await backend.purge("ns1", None) == 1
        assert await backend.purge(None, "m") == 1
        assert await backend.get_vectors("bucket", _key("", "ns2", "m"), 10) == {}
        assert await backend.get(_key("c", "ns2", "other")) == b"3"
        assert await backend.purge(None, None) == 1
        assert (await backend.stats())["entries"] == 0
    finally:
        await backend.close()

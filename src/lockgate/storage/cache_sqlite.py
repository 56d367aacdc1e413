"""The response cache in a SQLite file (aiosqlite: the driver's own thread, never the loop),
bounded by bytes: the entries closest to expiry go first once the file holds too much."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time

import aiosqlite

from lockgate.features.cache.backend import ENTRY_OVERHEAD
from lockgate.features.cache.keys import CacheKey

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cache_entries (
    id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    model_group TEXT NOT NULL,
    value BLOB NOT NULL,
    size INTEGER NOT NULL,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS cache_entries_expires ON cache_entries (expires);
CREATE TABLE IF NOT EXISTS cache_vectors (
    bucket TEXT NOT NULL,
    id TEXT NOT NULL,
    namespace TEXT NOT NULL,
    model_group TEXT NOT NULL,
    vector BLOB NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (bucket, id)
);
"""
_SWEEP_EVERY = 128  # vector writes between two deletions of expired vectors
_EVICT_BATCH = 64


class SqliteCacheBackend:
    name = "sqlite"
    slow = True

    def __init__(self, path: str, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._db: aiosqlite.Connection | None = None
        self._opening = asyncio.Lock()
        self._bytes = 0
        self._vector_writes = 0

    async def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            async with self._opening:
                if self._db is None:
                    db = await aiosqlite.connect(self.path)
                    await db.executescript("PRAGMA journal_mode=WAL;" + _SCHEMA)
                    async with db.execute("SELECT COALESCE(SUM(size), 0) FROM cache_entries") as c:
                        row = await c.fetchone()
                    self._bytes = int(row[0]) if row else 0
                    self._db = db
        return self._db

    async def get(self, key: CacheKey) -> bytes | None:
        try:
            db = await self._conn()
            async with db.execute(
                "SELECT value FROM cache_entries WHERE id = ? AND expires > ?",
                (key.storage_id(), time.time()),
            ) as cursor:
                row = await cursor.fetchone()
        except sqlite3.Error as exc:
            log.warning("cache: sqlite read failed: %s", exc)
            return None
        return bytes(row[0]) if row else None

    async def set(self, key: CacheKey, value: bytes, ttl: float) -> None:
        size = len(value) + ENTRY_OVERHEAD
        if size > self.max_bytes:
            return
        try:
            db = await self._conn()
            async with db.execute(
                "SELECT size FROM cache_entries WHERE id = ?", (key.storage_id(),)
            ) as cursor:
                old = await cursor.fetchone()
            await db.execute(
                "INSERT OR REPLACE INTO cache_entries VALUES (?, ?, ?, ?, ?, ?)",
                (key.storage_id(), key.namespace, key.group, value, size, time.time() + ttl),
            )
            self._bytes += size - (int(old[0]) if old else 0)
            while self._bytes > self.max_bytes:
                await self._evict(db)
            await db.commit()
        except sqlite3.Error as exc:
            log.warning("cache: sqlite write failed: %s", exc)

    async def _evict(self, db: aiosqlite.Connection) -> None:
        # SELECT then DELETE rather than DELETE ... RETURNING, which needs SQLite 3.35.
        async with db.execute(
            "SELECT id, size FROM cache_entries ORDER BY expires LIMIT ?", (_EVICT_BATCH,)
        ) as cursor:
            rows = list(await cursor.fetchall())
        if not rows:
            self._bytes = 0
            return
        doomed, freed = [], 0
        for entry_id, size in rows:  # only as many as the bound needs
            doomed.append((entry_id,))
            freed += int(size)
            if self._bytes - freed <= self.max_bytes:
                break
        await db.executemany("DELETE FROM cache_entries WHERE id = ?", doomed)
        self._bytes -= freed

    async def purge(self, namespace: str | None, group: str | None) -> int:
        clauses, args = [], []
        if namespace is not None:
            clauses.append("namespace = ?")
            args.append(namespace)
        if group is not None:
            clauses.append("model_group = ?")
            args.append(group)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        try:
            db = await self._conn()
            # The clauses are fixed strings; only the values are parameters.
            async with db.execute(
                f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM cache_entries{where}",  # noqa: S608
                args,
            ) as cursor:
                row = await cursor.fetchone()
            await db.execute(f"DELETE FROM cache_entries{where}", args)  # noqa: S608
            await db.execute(f"DELETE FROM cache_vectors{where}", args)  # noqa: S608
            await db.commit()
        except sqlite3.Error as exc:
            log.warning("cache: sqlite purge failed: %s", exc)
            return 0
        count, size = (int(row[0]), int(row[1])) if row else (0, 0)
        self._bytes -= size
        return count

    # -- the semantic cache's vectors, by neighbourhood ----------------------------------

    async def put_vector(
        self, bucket: str, key: CacheKey, vector: bytes, ttl: float, limit: int
    ) -> None:
        now = time.time()
        try:
            db = await self._conn()
            async with db.execute(
                "SELECT COUNT(*) FROM cache_vectors WHERE bucket = ? AND expires > ?",
                (bucket, now),
            ) as cursor:
                row = await cursor.fetchone()
            if row is not None and int(row[0]) >= limit:
                return
            await db.execute(
                "INSERT OR REPLACE INTO cache_vectors VALUES (?, ?, ?, ?, ?, ?)",
                (bucket, key.digest, key.namespace, key.group, vector, now + ttl),
            )
            self._vector_writes += 1
            if self._vector_writes % _SWEEP_EVERY == 0:
                await db.execute("DELETE FROM cache_vectors WHERE expires <= ?", (now,))
            await db.commit()
        except sqlite3.Error as exc:
            log.warning("cache: sqlite vector write failed: %s", exc)

    async def get_vectors(self, bucket: str, like: CacheKey, limit: int) -> dict[str, bytes]:
        try:
            db = await self._conn()
            async with db.execute(
                "SELECT id, vector FROM cache_vectors WHERE bucket = ? AND expires > ? LIMIT ?",
                (bucket, time.time(), limit),
            ) as cursor:
                rows = await cursor.fetchall()
        except sqlite3.Error as exc:
            log.warning("cache: sqlite vector read failed: %s", exc)
            return {}
        return {str(r[0]): bytes(r[1]) for r in rows}

    async def drop_vector(self, bucket: str, key: CacheKey) -> None:
        try:
            db = await self._conn()
            await db.execute(
                "DELETE FROM cache_vectors WHERE bucket = ? AND id = ?", (bucket, key.digest)
            )
            await db.commit()
        except sqlite3.Error as exc:
            log.warning("cache: sqlite vector delete failed: %s", exc)

    async def stats(self) -> dict[str, int]:
        try:
            db = await self._conn()
            async with db.execute(
                "SELECT COUNT(*) FROM cache_entries WHERE expires > ?", (time.time(),)
            ) as cursor:
                row = await cursor.fetchone()
        except sqlite3.Error:
            return {}
        return {"entries": int(row[0]) if row else 0, "bytes": self._bytes,
                "max_bytes": self.max_bytes}  # fmt: skip

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

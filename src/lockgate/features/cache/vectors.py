"""Where the semantic cache's vectors are kept, behind one interface: in process (the
memory backend), or in the configured store (SQLite, Redis), fetched per neighbourhood and
searched in process, so that every replica matches every replica's prompts."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from lockgate.features.cache.keys import CacheKey
from lockgate.features.cache.semantic import SemanticIndex, Vector, nearest

MAX_PER_BUCKET = 512  # vectors one neighbourhood keeps in a shared store


class VectorStore(Protocol):
    async def add(self, bucket: str, key: CacheKey, vector: Vector, ttl: float) -> None: ...

    async def search(
        self, bucket: str, like: CacheKey, vector: Vector, threshold: float
    ) -> tuple[CacheKey, float] | None: ...

    async def remove(self, bucket: str, key: CacheKey) -> None: ...

    async def purge(self, namespace: str | None, group: str | None) -> None: ...

    def size(self) -> int | None: ...


class LocalVectors:
    """The in-process index: the vectors' only home when the answers live in memory too."""

    def __init__(self, max_entries: int) -> None:
        self.index = SemanticIndex(max_entries)

    async def add(self, bucket: str, key: CacheKey, vector: Vector, ttl: float) -> None:
        self.index.add(bucket, key, vector)

    async def search(
        self, bucket: str, like: CacheKey, vector: Vector, threshold: float
    ) -> tuple[CacheKey, float] | None:
        return self.index.search(bucket, vector, threshold)

    async def remove(self, bucket: str, key: CacheKey) -> None:
        self.index.remove(bucket, key.digest)

    async def purge(self, namespace: str | None, group: str | None) -> None:
        self.index.purge(namespace, group)

    def size(self) -> int | None:
        return len(self.index)


class VectorBackend(Protocol):
    """A cache backend that also keeps vectors (float32 bytes) by neighbourhood."""

    async def put_vector(
        self, bucket: str, key: CacheKey, vector: bytes, ttl: float, limit: int
    ) -> None: ...

    async def get_vectors(self, bucket: str, like: CacheKey, limit: int) -> dict[str, bytes]: ...

    async def drop_vector(self, bucket: str, key: CacheKey) -> None: ...


class StoredVectors:
    """Vectors in the configured store; each search reads its one neighbourhood (at most
    `MAX_PER_BUCKET` vectors) and compares them in process."""

    def __init__(self, backend: VectorBackend) -> None:
        self.backend = backend

    async def add(self, bucket: str, key: CacheKey, vector: Vector, ttl: float) -> None:
        raw = np.asarray(vector, dtype="<f4").tobytes()
        await self.backend.put_vector(bucket, key, raw, ttl, MAX_PER_BUCKET)

    async def search(
        self, bucket: str, like: CacheKey, vector: Vector, threshold: float
    ) -> tuple[CacheKey, float] | None:
        stored = await self.backend.get_vectors(bucket, like, MAX_PER_BUCKET)
        width = len(vector) * 4
        usable = [(digest, raw) for digest, raw in stored.items() if len(raw) == width]
        if not usable:
            return None
        matrix = np.frombuffer(b"".join(raw for _, raw in usable), dtype="<f4")
        found = nearest(matrix.reshape(len(usable), len(vector)), vector)
        if found is None or found[1] < threshold:
            return None
        digest = usable[found[0]][0]
        return CacheKey(like.namespace, like.group, digest), found[1]

    async def remove(self, bucket: str, key: CacheKey) -> None:
        await self.backend.drop_vector(bucket, key)

    async def purge(self, namespace: str | None, group: str | None) -> None:
        """The backend's own purge removes the vectors with the answers."""

    def size(self) -> int | None:
        return None

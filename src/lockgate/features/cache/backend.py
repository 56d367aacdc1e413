"""Where cache entries live: the backend protocol and the default, an in-process LRU
bounded by bytes. SQLite and Redis backends live in `lockgate.storage`."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from lockgate.features.cache.keys import CacheKey

ENTRY_OVERHEAD = 200  # bytes an entry costs besides its value (key, bookkeeping)


class CacheBackend(Protocol):
    """Stores opaque entry bytes with a TTL. Every method fails open: a backend in trouble
    answers a miss and skips a write, and never raises into a request."""

    name: str
    slow: bool  # writes go to a background task rather than the request's own time

    async def get(self, key: CacheKey) -> bytes | None: ...

    async def set(self, key: CacheKey, value: bytes, ttl: float) -> None: ...

    async def purge(self, namespace: str | None, group: str | None) -> int: ...

    async def stats(self) -> dict[str, int]: ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class _Item:
    value: bytes
    expires: float
    namespace: str
    group: str

    @property
    def size(self) -> int:
        return len(self.value) + ENTRY_OVERHEAD


class MemoryBackend:
    """Least recently used entries go first once ``max_bytes`` is reached."""

    name = "memory"
    slow = False

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[str, _Item] = OrderedDict()

    async def get(self, key: CacheKey) -> bytes | None:
        sid = key.storage_id()
        item = self._items.get(sid)
        if item is None:
            return None
        if item.expires <= time.monotonic():
            self._drop(sid)
            return None
        self._items.move_to_end(sid)
        return item.value

    async def set(self, key: CacheKey, value: bytes, ttl: float) -> None:
        item = _Item(value, time.monotonic() + ttl, key.namespace, key.group)
        if item.size > self.max_bytes:
            return
        sid = key.storage_id()
        if sid in self._items:
            self._drop(sid)
        self._items[sid] = item
        self.bytes += item.size
        while self.bytes > self.max_bytes:
            self._drop(next(iter(self._items)))

    def _drop(self, sid: str) -> None:
        self.bytes -= self._items.pop(sid).size

    async def purge(self, namespace: str | None, group: str | None) -> int:
        doomed = [
            sid
            for sid, item in self._items.items()
            if (namespace is None or item.namespace == namespace)
            and (group is None or item.group == group)
        ]
        for sid in doomed:
            self._drop(sid)
        return len(doomed)

    async def stats(self) -> dict[str, int]:
        return {"entries": len(self._items), "bytes": self.bytes, "max_bytes": self.max_bytes}

    async def close(self) -> None:
        self._items.clear()
        self.bytes = 0

"""The semantic cache's index: prompt vectors searched in process, per neighbourhood.

Exact brute force with numpy rather than an approximate index: a lookup only compares
vectors within one bucket (same tenant scope, namespace, model group, parameters, system
prompt and earlier turns), which holds a few hundred vectors at most in practice, and the
whole index is bounded (`semantic_max_entries`, 50,000 x 384 float32 = 77 MB at most): one
matrix-vector product over such a bucket takes microseconds, is exact, and needs no
index maintenance when entries expire or are purged.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from lockgate.features.cache.keys import CacheKey

Vector = npt.NDArray[np.float32]


@dataclass(slots=True)
class _Bucket:
    keys: list[CacheKey] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # digest -> row
    matrix: Vector | None = None  # rows beyond len(keys) are spare capacity

    def add(self, key: CacheKey, vector: Vector) -> None:
        row = self.rows.get(key.digest)
        if row is None:
            row = len(self.keys)
            if self.matrix is None or row == len(self.matrix):
                grown = np.zeros((max(8, row * 2), len(vector)), dtype=np.float32)
                if self.matrix is not None:
                    grown[:row] = self.matrix[:row]
                self.matrix = grown
            self.keys.append(key)
            self.rows[key.digest] = row
        assert self.matrix is not None
        self.matrix[row] = vector

    def remove(self, digest: str) -> None:
        row = self.rows.pop(digest, None)
        if row is None or self.matrix is None:
            return
        last = len(self.keys) - 1
        if row != last:  # the last row takes the freed one's place
            moved = self.keys[last]
            self.keys[row] = moved
            self.matrix[row] = self.matrix[last]
            self.rows[moved.digest] = row
        self.keys.pop()

    def nearest(self, vector: Vector) -> tuple[CacheKey, float] | None:
        if not self.keys or self.matrix is None:
            return None
        found = nearest(self.matrix[: len(self.keys)], vector)
        return None if found is None else (self.keys[found[0]], found[1])


def nearest(matrix: npt.NDArray[np.float32], vector: Vector) -> tuple[int, float] | None:
    """The row of ``matrix`` (unit vectors) closest to ``vector`` and its cosine."""
    if not len(matrix) or matrix.shape[1] != len(vector):
        return None
    scores = matrix @ vector
    best = int(np.argmax(scores))
    return best, float(scores[best])


class SemanticIndex:
    """Unit vectors by bucket; the oldest entries go first beyond ``max_entries``."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._buckets: dict[str, _Bucket] = {}
        self._order: deque[tuple[str, str]] = deque()  # (bucket, digest), oldest first
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, bucket: str, key: CacheKey, vector: Vector) -> None:
        entries = self._buckets.setdefault(bucket, _Bucket())
        before = len(entries.keys)
        entries.add(key, vector)
        if len(entries.keys) > before:
            self._size += 1
            self._order.append((bucket, key.digest))
        while self._size > self.max_entries and self._order:
            self.remove(*self._order.popleft())

    def remove(self, bucket: str, digest: str) -> None:
        entries = self._buckets.get(bucket)
        if entries is None or digest not in entries.rows:
            return
        entries.remove(digest)
        self._size -= 1
        if not entries.keys:
            del self._buckets[bucket]

    def search(
        self, bucket: str, vector: Vector, threshold: float
    ) -> tuple[CacheKey, float] | None:
        entries = self._buckets.get(bucket)
        found = entries.nearest(vector) if entries is not None else None
        if found is None or found[1] < threshold:
            return None
        return found

    def purge(self, namespace: str | None, group: str | None) -> None:
        for bucket, entries in list(self._buckets.items()):
            for key in list(entries.keys):
                if (namespace is None or key.namespace == namespace) and (
                    group is None or key.group == group
                ):
                    self.remove(bucket, key.digest)
        self._order = deque(
            (b, d) for b, d in self._order if b in self._buckets and d in self._buckets[b].rows
        )

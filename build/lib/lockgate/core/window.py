"""Two counters over a sliding window of seconds, kept in per-second buckets."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class SlidingCounts:
    """Counts of two things (requests and retries, calls and failures) over the last
    ``window`` seconds; O(1) per update, memory bounded by the window."""

    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window
        self._clock = clock
        self._buckets: deque[list[int]] = deque()  # [second, first, second count]
        self.first = 0
        self.second = 0

    def _current(self) -> list[int]:
        now = int(self._clock())
        while self._buckets and self._buckets[0][0] <= now - self._window:
            _, first, second = self._buckets.popleft()
            self.first -= first
            self.second -= second
        if not self._buckets or self._buckets[-1][0] != now:
            self._buckets.append([now, 0, 0])
        return self._buckets[-1]

    def add(self, first: int = 0, second: int = 0) -> None:
        bucket = self._current()
        bucket[1] += first
        bucket[2] += second
        self.first += first
        self.second += second

    def totals(self) -> tuple[int, int]:
        """Both counts over the window as of now."""
        self._current()
        return self.first, self.second

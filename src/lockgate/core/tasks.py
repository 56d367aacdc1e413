"""The one place background tasks are spawned: tracked, and drained on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


class TaskTracker:
    """Owns every background task so that shutdown can wait for (or cancel) all of them."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        if self._closed:
            coro.close()
            raise RuntimeError(f"task tracker is closed; refused {name!r}")
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("background task %s failed: %r", task.get_name(), exc)

    def __len__(self) -> int:
        return len(self._tasks)

    def running(self, prefix: str) -> int:
        """How many tasks whose name starts with ``prefix`` are still running."""
        return sum(1 for task in self._tasks if task.get_name().startswith(prefix))

    async def drain(self, grace: float) -> None:
        """Refuse new tasks, wait up to ``grace`` seconds for running ones, cancel the rest."""
        self._closed = True
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
        for task in pending:
            log.warning("cancelling background task %s at shutdown", task.get_name())
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)


class Recurring:
    """A tracked task that runs ``step`` every ``interval`` seconds while ``wanted()``, for
    work that exists only while something is held (it ends when nothing is, and ``start``
    begins it again). ``stop`` lets the current step finish and starts no more."""

    def __init__(
        self,
        tasks: TaskTracker,
        name: str,
        interval: float,
        step: Callable[[], Awaitable[object]],
        wanted: Callable[[], bool],
    ) -> None:
        self._tasks = tasks
        self._name = name
        self._interval = interval
        self._step = step
        self._wanted = wanted
        self._task: asyncio.Task[None] | None = None
        self.stopped = False

    def start(self) -> None:
        if self._task is None and not self.stopped:
            with contextlib.suppress(RuntimeError):  # the tracker is closed: shutting down
                self._task = self._tasks.spawn(self._loop(), name=self._name)

    async def _loop(self) -> None:
        try:
            while self._wanted() and not self.stopped:
                await asyncio.sleep(self._interval)
                await self._step()
        finally:
            self._task = None

    async def stop(self) -> None:
        self.stopped = True
        task = self._task
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

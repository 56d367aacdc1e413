"""A replaying upstream: a real HTTP server that answers every request with one recorded
(documented) provider answer, and keeps what reached it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

EXAMPLES = Path(__file__).parent / "wire_examples"
# Read at import: a test's event loop must not block on file reads.
_FILES = {p.relative_to(EXAMPLES).as_posix(): p.read_bytes() for p in EXAMPLES.rglob("*.*")}


def example(path: str) -> bytes:
    return _FILES[path]


@dataclass
class Seen:
    method: str
    path_qs: str
    raw_path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Replay:
    url: str  # http://127.0.0.1:PORT
    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    seen: list[Seen] = field(default_factory=list)

    def answer(self, body: bytes, status: int = 200, **headers: str) -> None:
        self.status, self.body = status, body
        self.headers = {"Content-Type": "application/json", **headers}


ReplayFactory = Callable[[], Awaitable[Replay]]


@pytest.fixture
async def make_replay() -> AsyncIterator[ReplayFactory]:
    runners: list[web.AppRunner] = []

    async def factory() -> Replay:
        replay = Replay(url="")

        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            replay.seen.append(
                Seen(request.method, request.path_qs, request.raw_path, dict(request.headers), body)
            )
            return web.Response(status=replay.status, body=replay.body, headers=replay.headers)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        replay.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        return replay

    yield factory
    for runner in runners:
        await runner.cleanup()

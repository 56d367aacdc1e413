"""The gateway's listener: lockgate's front serves the API endpoints, aiohttp the rest.

`FrontSite` is an aiohttp site, so `AppRunner` starts and stops it like its own: on
`runner.cleanup()` the listener closes, the gateway says it is draining, the front's
requests in flight finish (within the shutdown timeout), then aiohttp drains the
connections it holds and the app's resources close.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import suppress

from aiohttp import web

from lockgate.api.front.connection import Connection
from lockgate.state import STATE, GatewayState

_SWEEP_EVERY = 5.0  # seconds between checks for keep-alive connections left idle


class Front:
    """What a front connection shares: the gateway, the open connections, aiohttp."""

    def __init__(
        self,
        state: GatewayState,
        aiohttp_protocol: Callable[[], asyncio.Protocol],
        *,
        keepalive_timeout: float,
    ) -> None:
        self.state = state
        self.max_body = state.config.server.max_body_bytes
        self.aiohttp_protocol = aiohttp_protocol
        self.loop = asyncio.get_running_loop()
        self.connections: set[Connection] = set()
        self.busy = 0  # endpoint calls in flight
        self.draining = False  # connections close after their call in flight
        self._quiet: asyncio.Event | None = None  # set when draining and none is left
        self._keepalive = keepalive_timeout
        self._sweeper = self.loop.call_later(_SWEEP_EVERY, self._sweep)

    def protocol(self) -> Connection:
        return Connection(self)

    def call_started(self) -> None:
        self.busy += 1

    def call_done(self) -> None:
        self.busy -= 1
        if not self.busy and self._quiet is not None:
            self._quiet.set()

    def _sweep(self) -> None:
        cutoff = self.loop.time() - self._keepalive
        for conn in list(self.connections):
            if conn.idle() and conn.idle_since < cutoff:
                conn.close()
        self._sweeper = self.loop.call_later(_SWEEP_EVERY, self._sweep)

    async def drain(self, grace: float) -> None:
        """Wait for the endpoint calls in flight (at most ``grace`` seconds), then close
        every connection; calls still running then are cancelled."""
        self._sweeper.cancel()
        self.draining = True
        for conn in list(self.connections):
            if conn.idle():
                conn.close()
        if self.busy:
            self._quiet = asyncio.Event()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._quiet.wait(), grace)
        for conn in list(self.connections):
            conn.close()
        await asyncio.sleep(0)  # let the closed connections' tasks see it


class FrontSite(web.BaseSite):
    __slots__ = ("_front", "_host", "_keepalive", "_port")

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        *,
        backlog: int = 4096,
        keepalive_timeout: float = 75.0,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._host = host
        self._port = port
        self._keepalive = keepalive_timeout
        self._front: Front | None = None

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def port(self) -> int:
        for sock in getattr(self._server, "sockets", None) or ():
            return int(sock.getsockname()[1])
        return self._port

    async def start(self) -> None:
        await super().start()
        runner = self._runner
        assert isinstance(runner, web.AppRunner) and runner.server is not None
        front = self._front = Front(
            runner.app[STATE], runner.server, keepalive_timeout=self._keepalive
        )
        self._server = await front.loop.create_server(
            front.protocol, self._host, self._port, backlog=self._backlog, reuse_address=True
        )

    async def stop(self) -> None:
        self._runner._check_site(self)
        if self._server is not None:
            self._server.close()
        if self._front is not None:
            state = self._front.state
            state.draining = True
            await self._front.drain(state.config.server.shutdown_timeout)
        self._runner._unreg_site(self)

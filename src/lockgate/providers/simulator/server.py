"""The simulator's HTTP server: request dispatch, fault gates, records and statistics."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import random
import socket
import string
import struct
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web

from lockgate.providers.simulator import embeddings, errors
from lockgate.providers.simulator.faults import RateLimiter, chance, in_outage, pick_error
from lockgate.providers.simulator.openai_wire import ChatPlan, plan_chat
from lockgate.providers.simulator.options import SimulatorOptions
from lockgate.providers.simulator.records import Headers, RequestRecord
from lockgate.providers.simulator.wire import OpenAIWire, Route
from lockgate.providers.simulator.wires import WIRES

Handler = Callable[[web.BaseRequest, Any], Awaitable[web.StreamResponse]]

_JSON = "application/json"
_INVALID_JSON = object()
_LINGER_RESET = struct.pack("ii", 1, 0)


class _ResetConnection(Exception):
    """Raised by the gates when an outage in ``reset`` mode should drop the connection."""


def _random_prefix() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(random.choice(alphabet) for _ in range(10))


class Simulator:
    """An OpenAI-compatible HTTP server with configurable latency and faults.

    ``options`` may be replaced at any time (the seeded RNG and rate-limit buckets start
    afresh); ``requests`` holds the last ``max_records`` requests, ``counts`` counts them by
    path and ``statuses`` counts answers by status.
    """

    def __init__(
        self, options: SimulatorOptions | None = None, *, max_records: int = 10_000
    ) -> None:
        self._options = options if options is not None else SimulatorOptions()
        self.max_records = max_records
        self.requests: list[RequestRecord] = []
        self.counts: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        # Answers whose client hung up before they were complete (a gateway that cancels
        # upstream calls on client disconnect shows up here).
        self.disconnects = 0
        self._limiter = RateLimiter()
        self._rng = random.Random(self._options.seed)
        self._runner: web.ServerRunner | None = None
        self._base_url: str | None = None
        self._started_at = time.monotonic()
        self._prefix = _random_prefix()
        self._ids = itertools.count(1)
        self._routes: dict[tuple[str, str], Handler] = {
            ("GET", "/models"): self._models,
            ("GET", "/health"): self._health,
            ("GET", "/_simulator/stats"): self._stats,
        }

    # -- public API -------------------------------------------------------------------

    @property
    def options(self) -> SimulatorOptions:
        return self._options

    @options.setter
    def options(self, value: SimulatorOptions) -> None:
        self._options = value
        self._rng = random.Random(value.seed)
        self._limiter.reset()

    @property
    def base_url(self) -> str:
        """``http://host:port/v1`` once started."""
        if self._base_url is None:
            raise RuntimeError("the simulator is not started")
        return self._base_url

    @property
    def root_url(self) -> str:
        """``http://host:port`` once started, for wires whose paths do not start at /v1."""
        return self.base_url.removesuffix("/v1")

    async def start(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        reuse_port: bool = False,
        started_at: float | None = None,
    ) -> str:
        """Listen on ``host:port`` (0 = any free port) and return the base URL ending in /v1.

        ``started_at`` (a ``time.monotonic()`` value) anchors the outage windows, so that
        worker processes sharing a port share one timeline."""
        if self._runner is not None:
            raise RuntimeError("the simulator is already started")
        server = web.Server(self._dispatch, handler_cancellation=True, access_log=None)
        runner = web.ServerRunner(server, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port, backlog=2048, reuse_port=reuse_port or None)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._started_at = time.monotonic() if started_at is None else started_at
        bound_host, bound_port = runner.addresses[0][:2]
        if bound_host in ("0.0.0.0", "::", ""):  # noqa: S104 - a wildcard bind
            bound_host = "127.0.0.1"
        if ":" in bound_host:
            bound_host = f"[{bound_host}]"
        self._base_url = f"http://{bound_host}:{bound_port}/v1"
        return self._base_url

    async def stop(self) -> None:
        """Close the listener and every connection (in-flight answers get one second)."""
        runner, self._runner = self._runner, None
        self._base_url = None
        if runner is not None:
            await runner.cleanup()

    def reset(self) -> None:
        """Forget records, counters and rate-limit usage; restart the RNG and outage clock."""
        self.requests.clear()
        self.counts.clear()
        self.statuses.clear()
        self.disconnects = 0
        self._limiter.reset()
        self._rng = random.Random(self._options.seed)
        self._started_at = time.monotonic()

    def stats(self) -> dict[str, Any]:
        return {
            "uptime_s": round(time.monotonic() - self._started_at, 3),
            "requests": sum(self.counts.values()),
            "paths": dict(self.counts),
            "statuses": {str(status): n for status, n in sorted(self.statuses.items())},
            "disconnects": self.disconnects,
        }

    async def __aenter__(self) -> Simulator:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- plumbing ---------------------------------------------------------------------

    def _next_id(self) -> str:
        return f"{self._prefix}{next(self._ids):010d}"

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        raw = await request.content.read() if request.can_read_body else b""
        body: Any = None
        if raw:
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                body = _INVALID_JSON
        elif request.method == "POST":
            body = _INVALID_JSON
        self.counts[path] += 1
        if self.max_records > 0:
            self._record(request, body)
        wire, handler = self._route(request.method, path)
        try:
            if not path.startswith("/_simulator/"):
                self._gate(request, wire, raw)
            if handler is None:
                raise errors.SimulatedError(
                    404, f"Invalid URL ({request.method} {path})", "invalid_request_error"
                )
            if body is _INVALID_JSON:
                raise errors.invalid_request(
                    "We could not parse the JSON body of your request. (HINT: This likely"
                    " means you aren't using your HTTP library correctly. The OpenAI API"
                    " expects a JSON payload, but what was sent was not valid JSON.)"
                )
            return await handler(request, body)
        except errors.SimulatedError as exc:
            return self._error(wire, exc)
        except _ResetConnection:
            self._drop(request, reset=True)
            return web.Response(status=503)

    def _route(self, method: str, path: str) -> tuple[OpenAIWire, Handler | None]:
        """The wire a request speaks (its errors take that shape) and its handler."""
        if method == "POST":
            for wire in WIRES:
                if (found := wire.match(path)) is not None:
                    return wire, functools.partial(self._serve, wire, *found)
            return WIRES[0], None
        route = path[3:] if path.startswith("/v1/") else path
        handler = self._routes.get((method, route))
        if handler is None and method == "GET" and route.startswith("/models/"):
            handler = self._model
        return WIRES[0], handler

    async def _serve(
        self,
        wire: OpenAIWire,
        route: Route,
        params: dict[str, str],
        request: web.BaseRequest,
        body: Any,
    ) -> web.StreamResponse:
        if route.operation == "embed":
            return await self._embeddings(request, wire, wire.embed_request(body, params, request))
        return await self._chat(request, wire, wire.chat_request(body, params, route, request))

    def _record(self, request: web.BaseRequest, body: Any) -> None:
        record = RequestRecord(
            request.method,
            request.path,
            Headers(request.headers),
            None if body is _INVALID_JSON else body,
            time.time(),
        )
        records = self.requests
        records.append(record)
        excess = len(records) - self.max_records
        if excess > max(0, self.max_records // 10):
            del records[:excess]

    def _gate(self, request: web.BaseRequest, wire: OpenAIWire, raw: bytes) -> None:
        """Outages first (the server is down), then the API key."""
        opts = self._options
        if opts.outages and in_outage(time.monotonic() - self._started_at, opts.outages):
            if opts.outage_mode == "reset":
                raise _ResetConnection
            raise errors.outage()
        if opts.api_key is not None:
            given = wire.credential(request)
            if given != opts.api_key:
                raise errors.bad_api_key(given)
            if opts.secret_key is not None:
                wire.verify(request, raw, opts.secret_key)

    def _drop(self, request: web.BaseRequest, *, reset: bool) -> None:
        """Close the connection: with an RST (``reset``) or a FIN after pending writes."""
        transport = request.transport
        if transport is None:
            return
        if reset:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            transport.abort()
        else:
            transport.close()

    def _respond(
        self, status: int, body: bytes, headers: dict[str, str] | None = None
    ) -> web.Response:
        self.statuses[status] += 1
        out = {"Content-Type": _JSON, "x-request-id": f"req_{self._next_id()}"}
        if headers:
            out.update(headers)
        return web.Response(status=status, body=body, headers=out)

    def _error(self, wire: OpenAIWire, exc: errors.SimulatedError) -> web.Response:
        status, body, headers = wire.error(exc)
        return self._respond(status, body, headers)

    def _admit(self, model: str, tokens: int) -> tuple[SimulatorOptions, dict[str, str]]:
        """Rate limits, then injected errors; returns the options and rate-limit headers."""
        opts = self._options
        headers = self._limiter.admit(
            time.monotonic(), opts.rpm, opts.tpm, tokens, model, opts.burst_seconds
        )
        status = pick_error(self._rng, opts.error_rates)
        if status is not None:
            failure = errors.injected(status)
            failure.headers = {**headers, **failure.headers}
            raise failure
        return opts, headers

    async def _delay(self, seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds)

    # -- handlers ---------------------------------------------------------------------

    async def _chat(
        self, request: web.BaseRequest, wire: OpenAIWire, body: Any
    ) -> web.StreamResponse:
        call_id = f"call_{self._prefix}{next(self._ids):010d}_"
        try:
            plan = plan_chat(body, self._options, call_id)
        except errors.SimulatedError as exc:
            refusal = wire.refusal(exc, body, self._options)
            if refusal is None:
                raise
            plan = refusal
        opts, headers = self._admit(plan.model, plan.prompt_tokens + plan.completion_tokens)
        headers = wire.response_headers(headers)
        try:
            if plan.stream:
                return await self._stream(request, wire, plan, opts, headers)
            latency = opts.latency_dist
            if not latency.is_zero:
                await self._delay(latency.sample(self._rng))
        except asyncio.CancelledError:
            self.disconnects += 1  # the client hung up: the server cancelled this handler
            raise
        reply = wire.chat_body(plan, self._next_id(), int(time.time()))
        return self._respond(200, reply, headers)

    async def _stream(
        self,
        request: web.BaseRequest,
        wire: OpenAIWire,
        plan: ChatPlan,
        opts: SimulatorOptions,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        rng = self._rng
        frames = wire.chat_frames(plan, self._next_id(), int(time.time()), opts.stream_chunks)
        cut: int | None = None
        if chance(rng, opts.broken_stream_rate):
            # Never before the first frame, never after the last content frame.
            cut = rng.randint(1, max(1, wire.last_cut(plan, frames)))
        ttft, inter = opts.ttft_dist, opts.inter_token_dist
        if not ttft.is_zero:
            await self._delay(ttft.sample(rng))
        response = web.StreamResponse(status=200)
        response.headers.update(headers)
        response.headers["Content-Type"] = wire.stream_content_type
        response.headers["Cache-Control"] = "no-cache"
        response.headers["x-request-id"] = f"req_{self._next_id()}"
        self.statuses[200] += 1
        try:
            await response.prepare(request)
            # Frames produced at the same instant go out in one write; a paced frame is
            # flushed on its own as soon as its inter-token delay has passed.
            pending: list[bytes] = []
            for index, frame in enumerate(frames):
                if index == cut:
                    if pending:
                        await response.write(b"".join(pending))
                    self._drop(request, reset=False)
                    return response
                if frame.paced and not inter.is_zero:
                    if pending:
                        await response.write(b"".join(pending))
                        pending.clear()
                    await self._delay(inter.sample(rng))
                pending.append(frame.data)
            await response.write(b"".join(pending))
            await response.write_eof()
        except ConnectionError:
            self.disconnects += 1  # the client went away; nothing left to do
        return response

    async def _embeddings(
        self, request: web.BaseRequest, wire: OpenAIWire, body: Any
    ) -> web.StreamResponse:
        plan = embeddings.plan_embeddings(body, self._options)
        opts, headers = self._admit(plan.model, plan.prompt_tokens)
        latency = opts.latency_dist
        if not latency.is_zero:
            await self._delay(latency.sample(self._rng))
        return self._respond(200, wire.embed_body(plan), wire.response_headers(headers))

    async def _models(self, request: web.BaseRequest, body: Any) -> web.StreamResponse:
        return self._respond(200, embeddings.models_body(self._options))

    async def _model(self, request: web.BaseRequest, body: Any) -> web.StreamResponse:
        name = request.path.split("/models/", 1)[1]
        return self._respond(200, embeddings.model_body(self._options, name))

    async def _health(self, request: web.BaseRequest, body: Any) -> web.StreamResponse:
        return self._respond(200, b'{"status":"ok"}')

    async def _stats(self, request: web.BaseRequest, body: Any) -> web.StreamResponse:
        return self._respond(200, orjson.dumps(self.stats()))

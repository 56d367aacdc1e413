"""One client connection on the front: HTTP/1.1 parsed by httptools, the API endpoints
served in order, everything else handed to aiohttp.

A connection stays here while its requests are API endpoint calls (`endpoints.BY_ROUTE`).
The first request for anything else (operator routes, the dashboard, an unknown path,
a websocket) hands the connection, with the bytes read so far, to aiohttp's protocol,
which serves it from then on; that happens between requests, once the ones before it
are answered. A request for anything else that arrives pipelined in the same read as
an API request's end cannot be handed over; it is refused with 400 and the connection
closes after it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from contextlib import suppress
from typing import TYPE_CHECKING, cast

import httptools
import orjson

from lockgate.api.endpoints import BY_ROUTE, serve
from lockgate.api.errors import openai_error_body
from lockgate.api.exchange import Reply
from lockgate.api.front.exchange import FrontExchange, response_head
from lockgate.core.errors import BadRequest

if TYPE_CHECKING:
    from lockgate.api.front.site import Front

log = logging.getLogger("lockgate.api")

_MAX_LINE = 8192  # the request line, as aiohttp allows
_MAX_HEAD = 65536  # request line and headers together
_LINGER = 5.0  # seconds to read what is left of a refused request's body before closing


class Connection(asyncio.Protocol):
    def __init__(self, front: Front) -> None:
        self._front = front
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._pending = b""  # a request line not yet whole: where it goes is not known yet
        self._receiving = False  # between a message's first byte and its end
        self._url = b""
        self._headers: dict[str, str] = {}
        self._head_size = 0
        self._current: FrontExchange | None = None  # the message being received
        self._queue: deque[FrontExchange] = deque()  # received, answered in order
        self._task: asyncio.Task[None] | None = None
        self._handover: bytes | None = None  # bytes for aiohttp once the queue is done
        self._paused = False
        self._drained: asyncio.Future[None] | None = None
        self.idle_since = 0.0

    # --- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.idle_since = self._front.loop.time()
        self._front.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._front.connections.discard(self)
        self._transport = None
        self._queue.clear()
        if self._task is not None:
            self._task.cancel()  # the client left: its upstream call stops too
        if self._drained is not None and not self._drained.done():
            self._drained.set_exception(ConnectionResetError("the client closed the connection"))

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def data_received(self, data: bytes) -> None:
        if not self._receiving:  # a new request starts here: whose is it?
            if self._pending:
                data, self._pending = self._pending + data, b""
            end = data.find(b"\r\n")
            if end < 0 and len(data) < _MAX_LINE:
                self._pending = data
                return
            if end < 0 or not _is_endpoint(data[:end]):
                self._hand_over(data)
                return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse("Protocol upgrades are not served on API endpoints.")
        except httptools.HttpParserError as exc:
            self._refuse(f"Malformed HTTP request: {exc}.")

    # --- httptools callbacks
    def on_message_begin(self) -> None:
        self._receiving = True
        self._url = b""
        self._headers = {}
        self._head_size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._grow(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")
        self._grow(len(name) + len(value))

    def on_headers_complete(self) -> None:
        parser = self._parser
        method = parser.get_method()
        path = self._url.partition(b"?")[0]
        endpoint = BY_ROUTE.get((method, path))
        version = parser.get_http_version()
        ex = FrontExchange(
            self,
            endpoint,
            method.decode(),
            path.decode("latin-1"),
            self._headers,
            keep_alive=parser.should_keep_alive() and endpoint is not None,
            streams=version != "1.0",
        )
        self._current = ex
        if self._headers.get("expect", "").lower() == "100-continue" and ex.fits(
            self._front.max_body
        ):
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self._queue.append(ex)
        if self._task is None:
            self._next()

    def on_body(self, body: bytes) -> None:
        if self._current is not None:
            self._current.body_part(body, self._front.max_body)

    def on_message_complete(self) -> None:
        self._receiving = False
        ex, self._current = self._current, None
        if ex is None:
            return
        ex.body_done()
        if ex.replied and not ex.keep_alive:
            self.close()

    # --- serving
    def _next(self) -> None:
        """Serve the oldest request waiting, or hand over or rest when there is none."""
        if self._queue:
            ex = self._queue[0]
            self._task = self._front.loop.create_task(self._serve(ex))
            return
        self._task = None
        self.idle_since = self._front.loop.time()
        if self._handover is not None:
            data, self._handover = self._handover, None
            self._hand_over(data)

    async def _serve(self, ex: FrontExchange) -> None:
        front = self._front
        try:
            if ex.endpoint is None:
                ex.reply(_stray(ex))
            else:
                front.call_started()
                try:
                    await serve(front.state, ex.endpoint, ex)
                finally:
                    front.call_done()
        except ConnectionError:
            return
        except Exception:  # a response that could not be written (a bad header value)
            log.exception("could not answer %s %s", ex.method, ex.path)
            self.close()
            return
        if self._transport is None:
            return
        self._queue.popleft()
        if not ex.keep_alive or front.draining:
            if ex.complete:
                self.close()
            else:  # read the rest of the body, then close (closing now could lose the reply)
                front.loop.call_later(_LINGER, self.close)
            return
        self._next()

    # --- writing
    def write(self, data: bytes) -> None:
        if self._transport is None:
            raise ConnectionResetError("the client closed the connection")
        self._transport.write(data)

    async def drain(self) -> None:
        if self._transport is None:
            raise ConnectionResetError("the client closed the connection")
        if self._paused:
            self._drained = self._front.loop.create_future()
            await self._drained

    # --- the connection's end, or its handing over
    @property
    def draining(self) -> bool:
        return self._front.draining

    def idle(self) -> bool:
        return self._task is None and not self._receiving

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _hand_over(self, data: bytes) -> None:
        if self._task is not None:  # answer what came before first
            self._handover = data
            assert self._transport is not None
            self._transport.pause_reading()
            return
        transport = self._transport
        if transport is None:
            return
        self._front.connections.discard(self)
        self._transport = None
        protocol = self._front.aiohttp_protocol()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        with suppress(RuntimeError):  # reading was not paused
            transport.resume_reading()
        if data:
            protocol.data_received(data)

    def _grow(self, size: int) -> None:
        self._head_size += size
        if self._head_size > _MAX_HEAD:
            raise httptools.HttpParserError("request line and headers over 64 KiB")

    def _refuse(self, message: str) -> None:
        """A request that cannot be parsed: 400, and the connection closes."""
        if self._task is None:  # else a response is being written: only closing is safe
            body = _error(message, "malformed_request")
            head = response_head(
                400,
                {"content-type": "application/json"},
                f"content-length: {len(body)}\r\n",
                close=True,
            )
            with suppress(ConnectionError):
                self.write(head + body)
        self.close()


def _is_endpoint(line: bytes) -> bool:
    """Whether a request line (``POST /v1/chat/completions HTTP/1.1``) names an endpoint."""
    method, _, rest = line.partition(b" ")
    target = rest.rpartition(b" ")[0]
    return (method, target.partition(b"?")[0]) in BY_ROUTE


def _stray(ex: FrontExchange) -> Reply:
    """A request for something other than an endpoint, pipelined behind one (its
    exchange never keeps the connection alive)."""
    message = (
        f"{ex.method} {ex.path} arrived pipelined behind an API request; this connection "
        "serves only the API endpoints now. Send it on a new connection."
    )
    return Reply(400, _error(message, "pipelined_request"))


def _error(message: str, code: str) -> bytes:
    return orjson.dumps(openai_error_body(BadRequest(message, code=code)))

"""A lean HTTP/1.1 client for upstream calls: keep-alive pools on asyncio protocols.

Responses are parsed by httptools (llhttp, Node.js's parser). The client does what an
upstream call needs and nothing else: a request with a body, keep-alive connections reused
warmest first, a connection limit per origin, connect and whole-call timeouts, TLS,
chunked and gzip/deflate bodies, and streaming with back-pressure. aiohttp's
`ClientSession` did the same job at about a quarter of the gateway's CPU per request
(cookies, redirects, proxies, tracing hooks and several layers of tasks and streams that
an upstream call does not use): see bench/RESULTS.md.

A connection carries one exchange at a time. It goes back to its pool only when its
response was read to the end and both sides allow keep-alive; a response abandoned
half-way (a client gone, an error) closes its connection, which is what stops the
generation upstream.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

import httptools
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

_IDLE_SECONDS = 60.0  # an idle connection older than this is closed rather than reused
_HIGH_WATER = 1 << 20  # bytes buffered for a slow reader before the socket is paused


class TransportError(Exception):
    """The upstream could not be reached, or the exchange broke before it completed."""


class ConnectFailed(TransportError):
    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(f"cannot connect to {host}:{port}: {reason}")
        self.host = host
        self.port = port


class Disconnected(TransportError):
    """The upstream closed the connection before the response was complete."""


class BadResponse(TransportError):
    """The upstream's bytes are not a valid HTTP/1.1 response."""


class TimedOut(TransportError):
    """The whole call (connect, send, headers and body) did not finish in time."""


class Response:
    """A response whose headers have arrived; its body comes with `read` or `iter_any`."""

    __slots__ = ("_chunks", "_conn", "_done", "_exc", "_size", "_waiter", "headers", "status")

    def __init__(self, conn: _Connection, status: int, headers: CIMultiDictProxy[str]) -> None:
        self.status = status
        self.headers = headers
        self._conn = conn
        self._chunks: list[bytes] = []
        self._size = 0
        self._waiter: asyncio.Future[None] | None = None
        self._done = False
        self._exc: BaseException | None = None

    async def read(self) -> bytes:
        """The whole body; the connection goes back to its pool."""
        parts: list[bytes] = []
        try:
            while True:
                if self._chunks:
                    parts.append(self._take())
                elif self._exc is not None:
                    raise self._exc
                elif self._done:
                    break
                else:
                    await self._wait()
        except BaseException:
            self.close()
            raise
        self.release()
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def iter_any(self) -> AsyncIterator[bytes]:
        """The body in pieces, as they arrive."""
        while True:
            if self._chunks:
                yield self._take()
            elif self._exc is not None:
                raise self._exc
            elif self._done:
                return
            else:
                await self._wait()

    def _take(self) -> bytes:
        data = b"".join(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
        self._chunks.clear()
        self._size = 0
        self._conn.resume()
        return data

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def release(self) -> None:
        """Return a fully read connection to its pool; close one that is not."""
        self._conn.finished(reusable=True)

    def close(self) -> None:
        self._conn.finished(reusable=False)

    # Fed by the connection.
    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size > _HIGH_WATER:
            self._conn.pause()
        self._wake()

    def _finish(self, exc: BaseException | None = None) -> None:
        if not self._done:
            self._done = True
            self._exc = exc
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class _Connection(asyncio.Protocol):
    """One keep-alive connection; the parser calls its `on_*` methods."""

    def __init__(self, pool: OriginPool) -> None:
        self._pool = pool
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._header_list: list[tuple[str, str]] = []
        self._head: asyncio.Future[Response] | None = None
        self._response: Response | None = None
        self._decoder: Any = None
        self._until_eof = False
        self._timer: asyncio.TimerHandle | None = None
        self.closed = False
        self.busy = False
        self.keep_alive = True
        self.idle_since = 0.0
        self._paused = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__cause__ or exc.__context__
            self._fail(cause if isinstance(cause, TransportError) else BadResponse(str(exc)))
        except httptools.HttpParserError as exc:
            self._fail(BadResponse(f"upstream sent an invalid HTTP response: {exc}"))

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        response = self._response
        if response is not None and not response._done and self._until_eof:
            self._complete()
        else:
            self._fail(Disconnected("upstream closed the connection before the response ended"))
        self._pool.lost(self)

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_list.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an informational answer precedes the real one
            self._header_list.clear()
            return
        headers = CIMultiDictProxy(CIMultiDict(self._header_list))
        self._header_list.clear()
        self.keep_alive = self._parser.should_keep_alive()
        self._until_eof = "content-length" not in headers and (
            "chunked" not in headers.get("transfer-encoding", "").lower()
        )
        encoding = headers.get("content-encoding", "identity").lower()
        if encoding == "gzip":
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._decoder = zlib.decompressobj()
        elif encoding not in ("identity", ""):
            raise BadResponse(f"upstream sent an unsupported content-encoding: {encoding}")
        self._response = Response(self, status, headers)
        if self._head is not None and not self._head.done():
            self._head.set_result(self._response)

    def on_body(self, body: bytes) -> None:
        if self._response is None:
            return
        if self._decoder is not None:
            try:
                body = self._decoder.decompress(body)
            except zlib.error as exc:
                raise BadResponse(f"upstream body could not be decompressed: {exc}") from exc
            if not body:
                return
        self._response._feed(body)

    def on_message_complete(self) -> None:
        if self._response is not None:
            self._complete()

    # Used by the pool and the response.
    def send(self, head: bytes, body: bytes, deadline: float) -> asyncio.Future[Response]:
        assert self.transport is not None
        self.busy = True
        self._response = None
        self._decoder = None
        self._until_eof = False
        self._head = self._loop.create_future()
        self._timer = self._loop.call_at(deadline, self._timed_out)
        self.transport.writelines((head, body))
        return self._head

    def finished(self, *, reusable: bool) -> None:
        """The exchange is over for its caller: back to the pool if it may be and its
        response was read to the end without error, else closed."""
        if not self.busy:
            return
        self.busy = False
        self._cancel_timer()
        response = self._response
        complete = response is not None and response._done and response._exc is None
        if reusable and complete and self.keep_alive and not self.closed:
            self._response = None
            self._head = None
            self._pool.put_back(self)
        else:
            self.abort()

    def abort(self) -> None:
        self._cancel_timer()
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.abort()
            self._pool.lost(self)

    def pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    def _complete(self) -> None:
        self._cancel_timer()
        assert self._response is not None
        if self._decoder is not None:
            tail = self._decoder.flush()
            if tail:
                self._response._feed(tail)
        self._response._finish()

    def _timed_out(self) -> None:
        self._timer = None
        self._fail(TimedOut("upstream did not answer in time"))
        self.abort()

    def _fail(self, exc: TransportError) -> None:
        if self._head is not None and not self._head.done():
            self._head.set_exception(exc)
        elif self._response is not None:
            self._response._finish(exc)
        if self.transport is not None and not self.closed:
            self.abort()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class OriginPool:
    """Keep-alive connections to one scheme://host:port, at most `limit` open at once."""

    def __init__(
        self, url: URL, *, limit: int, connect_timeout: float, tls: ssl.SSLContext | None
    ) -> None:
        self.host = url.raw_host or ""
        default_port = 443 if url.scheme == "https" else 80
        self.port = url.port or default_port
        name = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address
        self._host = name if self.port == default_port else f"{name}:{self.port}"
        self._limit = limit
        self._connect_timeout = connect_timeout
        self._tls = tls
        self._idle: deque[_Connection] = deque()
        self._open: set[_Connection] = set()
        self._connecting = 0  # slots held by connections being opened
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def request(
        self, method: str, url: URL, body: bytes, headers: Mapping[str, str], seconds: float
    ) -> Response:
        """Send one request; return once the response's headers are in. The whole call,
        body included, must end within `seconds` (the timer outlives this coroutine, so it
        is not an asyncio timeout around it)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        head = self._head(method, url, headers, len(body))  # may refuse: before a connection
        conn = self._idle_connection(loop.time())
        if conn is None:
            try:
                async with asyncio.timeout_at(deadline):
                    conn = await self._new_connection()
            except TimeoutError:
                raise TimedOut("upstream did not accept a connection in time") from None
        try:
            return await conn.send(head, body, deadline)
        except BaseException:
            conn.finished(reusable=False)  # cancelled (client gone) or failed: never reuse
            raise

    def _idle_connection(self, now: float) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()  # the most recently used: warmest, least likely closed
            if not conn.closed and now - conn.idle_since < _IDLE_SECONDS:
                return conn
            conn.abort()
        return None

    async def _new_connection(self) -> _Connection:
        loop = asyncio.get_running_loop()
        while len(self._open) + self._connecting >= self._limit:
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # pass the freed slot on
                raise
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            conn = self._idle_connection(loop.time())
            if conn is not None:
                return conn
        self._connecting += 1
        try:
            async with asyncio.timeout(self._connect_timeout):
                transport, conn = await loop.create_connection(
                    lambda: _Connection(self),
                    self.host,
                    self.port,
                    ssl=self._tls,
                    server_hostname=self.host if self._tls is not None else None,
                )
        except BaseException as exc:
            self._connecting -= 1
            self._wake_one()  # the slot is free again: a waiter may connect
            if isinstance(exc, TimeoutError):
                raise ConnectFailed(self.host, self.port, "connect timed out") from None
            if isinstance(exc, OSError):
                reason = exc.strerror or type(exc).__name__
                raise ConnectFailed(self.host, self.port, reason) from None
            raise
        self._connecting -= 1
        if conn.closed:
            raise Disconnected("upstream closed the connection as it opened")
        conn.transport = transport  # uvloop may call connection_made only after this returns
        self._open.add(conn)
        return conn

    def _head(self, method: str, url: URL, headers: Mapping[str, str], length: int) -> bytes:
        lines = [method, " ", url.raw_path_qs, " HTTP/1.1\r\nHost: ", self._host]
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise ValueError(f"header {name!r} contains a line break")
            lines += ("\r\n", name, ": ", value)
        lines.append(f"\r\nContent-Length: {length}\r\n\r\n")
        return "".join(lines).encode()

    def put_back(self, conn: _Connection) -> None:
        conn.idle_since = asyncio.get_running_loop().time()
        self._idle.append(conn)
        self._wake_one()

    def lost(self, conn: _Connection) -> None:
        self._open.discard(conn)
        if conn in self._idle:
            self._idle.remove(conn)
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        for conn in list(self._open):
            conn.abort()
        self._idle.clear()

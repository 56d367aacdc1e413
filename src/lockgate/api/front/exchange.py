"""One request on a front connection: its body as it arrives, its response as it leaves."""

from __future__ import annotations

import asyncio
import time
from email.utils import formatdate
from http import HTTPStatus
from typing import TYPE_CHECKING

from lockgate.api.exchange import Exchange, Reply, too_large

if TYPE_CHECKING:
    from lockgate.api.endpoints import Endpoint
    from lockgate.api.front.connection import Connection

_REASONS = {s.value: s.phrase for s in HTTPStatus}
_LAST_CHUNK = b"0\r\n\r\n"


class _Date:
    """The `Date` header's value, formatted once a second."""

    second = 0
    value = ""

    @classmethod
    def now(cls) -> str:
        second = int(time.time())
        if second != cls.second:
            cls.second, cls.value = second, formatdate(second, usegmt=True)
        return cls.value


def response_head(
    status: int, headers: dict[str, str], framing: str, *, close: bool = False
) -> bytes:
    """Status line and headers; ``framing`` is the content-length or transfer-encoding line."""
    # "name: value" lines joined in C (``map`` over the items): no bytecode per header.
    fields = "\r\n".join(map(": ".join, headers.items())) + "\r\n" if headers else ""
    # One line per header: a value with a line break in it would start a header (or a
    # response) of its own.
    if fields.count("\n") != len(headers):
        raise ValueError("a response header holds a line break")
    reason = _REASONS.get(status, "Unknown")
    end = "connection: close\r\n\r\n" if close else "\r\n"
    return f"HTTP/1.1 {status} {reason}\r\ndate: {_Date.now()}\r\n{framing}{fields}{end}".encode()


class FrontExchange(Exchange):
    __slots__ = (
        "_body",
        "_conn",
        "_length",
        "_ready",
        "_size",
        "complete",
        "endpoint",
        "headers",
        "keep_alive",
        "method",
        "path",
        "replied",
        "started",
        "streams",
    )

    def __init__(
        self,
        conn: Connection,
        endpoint: Endpoint | None,
        method: str,
        path: str,
        headers: dict[str, str],
        *,
        keep_alive: bool,
        streams: bool,
    ) -> None:
        self._conn = conn
        self.endpoint = endpoint  # None: a request this connection cannot serve
        self.method = method
        self.path = path
        self.headers = headers
        self.keep_alive = keep_alive
        self.streams = streams  # chunked responses (HTTP/1.1); else the body ends at close
        self.started = False
        self.replied = False  # the whole response has been written
        self.complete = False  # the whole request has been read
        self._body: list[bytes] = []
        self._size = 0
        length = headers.get("content-length")  # the parser has checked it is a number
        self._length = int(length) if length is not None else None
        self._ready: asyncio.Future[None] | None = None

    # The connection feeds the body.
    def fits(self, limit: int) -> bool:
        return self._length is None or self._length <= limit

    def body_part(self, data: bytes, limit: int) -> None:
        self._size += len(data)
        if self._size <= limit and not self.replied:
            self._body.append(data)

    def body_done(self) -> None:
        self.complete = True
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)

    async def read(self, limit: int) -> bytes:
        if (self._length is not None and self._length > limit) or self._size > limit:
            raise too_large(limit)
        if not self.complete:
            self._ready = asyncio.get_running_loop().create_future()
            await self._ready
            if self._size > limit:
                raise too_large(limit)
        return b"".join(self._body) if len(self._body) != 1 else self._body[0]

    def reply(self, reply: Reply) -> None:
        headers = reply.headers
        headers["content-type"] = reply.content_type
        self.started = self.replied = True
        close = self._closes()
        self._conn.write(
            response_head(
                reply.status, headers, f"content-length: {len(reply.body)}\r\n", close=close
            )
            + reply.body
        )

    async def open_stream(self, headers: dict[str, str]) -> None:
        self.started = True
        if self.streams:
            framing = "transfer-encoding: chunked\r\n"
        else:  # HTTP/1.0: the body ends when the connection does
            self.keep_alive = False
            framing = ""
        self._conn.write(response_head(200, headers, framing, close=self._closes()))
        await self._conn.drain()

    async def send(self, data: bytes) -> None:
        if not data:
            return
        if self.streams:
            self._conn.write(b"%x\r\n%b\r\n" % (len(data), data))
        else:
            self._conn.write(data)
        await self._conn.drain()

    async def close_stream(self) -> None:
        self.replied = True
        if self.streams:
            self._conn.write(_LAST_CHUNK)

    def _closes(self) -> bool:
        """Whether the connection closes after this response: the client asked, the
        request's body is still arriving (a refusal before it was read), or the gateway
        is shutting down."""
        if not self.complete or self._conn.draining:
            self.keep_alive = False
        return not self.keep_alive

"""One request and its response, whichever HTTP server carries them.

The API endpoints (`api/endpoints.py`) are written against `Exchange`. Two servers carry
exchanges: lockgate's own HTTP/1.1 front (`api/front/`), which serves the endpoints on
connections that speak only to them, and aiohttp, which serves every other route and
the endpoints on the connections it holds (`AiohttpExchange` below).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web

from lockgate.core.errors import PayloadTooLarge

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


@dataclass(slots=True)
class Reply:
    """A whole response: status, body and the headers beyond the body's type and length."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


class Exchange(ABC):
    """A request as the endpoints see it, and the way its response goes out.

    `headers` answers lower-case names. A response is either one `reply`, or a stream:
    `open_stream`, `send` per piece, `close_stream`. Writes to a client that has gone
    raise `ConnectionError`.
    """

    __slots__ = ()

    method: str
    path: str
    headers: Mapping[str, str]
    started: bool  # the response's head has gone out: errors can no longer change it

    @abstractmethod
    async def read(self, limit: int) -> bytes:
        """The whole body; `PayloadTooLarge` beyond ``limit`` bytes."""

    @abstractmethod
    def reply(self, reply: Reply) -> None: ...

    @abstractmethod
    async def open_stream(self, headers: dict[str, str]) -> None:
        """Status 200, the body to follow in pieces (server-sent events)."""

    @abstractmethod
    async def send(self, data: bytes) -> None: ...

    @abstractmethod
    async def close_stream(self) -> None: ...


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body is larger than the gateway's limit of {limit} bytes.")


def aiohttp_response(reply: Reply) -> web.Response:
    return web.Response(
        status=reply.status,
        body=reply.body,
        content_type=reply.content_type,
        headers=reply.headers,
    )


class AiohttpExchange(Exchange):
    """An exchange on a connection aiohttp holds; `response` is what the route returns."""

    __slots__ = ("_request", "headers", "method", "path", "response", "started")

    def __init__(self, request: web.Request) -> None:
        self.method = request.method
        self.path = request.path
        self.headers = request.headers
        self.started = False
        self._request = request
        self.response: web.StreamResponse | None = None

    async def read(self, limit: int) -> bytes:
        length = self._request.content_length
        if length is not None and length > limit:
            raise too_large(limit)
        try:
            raw = await self._request.read()
        except web.HTTPRequestEntityTooLarge as exc:
            raise too_large(limit) from exc
        if len(raw) > limit:
            raise too_large(limit)
        return raw

    def reply(self, reply: Reply) -> None:
        self.started = True
        self.response = aiohttp_response(reply)

    async def open_stream(self, headers: dict[str, str]) -> None:
        response = self.response = web.StreamResponse(headers=headers)
        self.started = True
        await response.prepare(self._request)

    async def send(self, data: bytes) -> None:
        assert self.response is not None
        await self.response.write(data)

    async def close_stream(self) -> None:
        assert self.response is not None
        await self.response.write_eof()

"""The cheapest OpenAI-shaped upstream: a bare asyncio protocol parsed by httptools, on uvloop.

It answers `POST .../chat/completions` (non-streaming) with the same fixed chat completion
as `bench/upstream.py`, `GET /health` and `GET /v1/models` with 200, anything else with 404,
and keeps connections alive as HTTP/1.1 does. There is no routing table, no request object
and no task per request: the reply is written from the parser's callback.

It exists for benchmarks in which the upstream shares the load core with wrk, the ledger's
writer, PostgreSQL and Redis (`bench/governance.py`): the provider simulator and the aiohttp
upstream cost that core about as much CPU per request as the gateway costs its own, so the
load core, not the gateway, ran out first. Measured with it, a drop in requests/s is the
gateway's.

    python bench/lean_upstream.py --port 9100
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket

import httptools

from upstream import chat_body, listening_socket


def _reply(body: bytes) -> bytes:
    """A whole 200 response with a JSON ``body``, written as it is for every request."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    return head + str(len(body)).encode() + b"\r\n\r\n" + body


_OK = _reply(chat_body())
_READY = _reply(b'{"object":"list","data":[{"id":"gpt-4o-mini","object":"model"}]}')
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
_BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _Exchange(asyncio.Protocol):
    """One client connection: each complete request gets its reply from `on_message_complete`."""

    __slots__ = ("_parser", "_transport", "_url")

    def __init__(self) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            if self._transport is not None:
                self._transport.write(_BAD)
                self._transport.close()

    def on_url(self, url: bytes) -> None:
        self._url = url

    def on_message_complete(self) -> None:
        transport = self._transport
        if transport is None:
            return
        method = self._parser.get_method()
        if method == b"POST" and self._url.endswith(b"/chat/completions"):
            transport.write(_OK)
        elif method == b"GET" and self._url in (b"/health", b"/v1/models"):
            transport.write(_READY)
        else:
            transport.write(_NOT_FOUND)
        if not self._parser.should_keep_alive():
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


async def serve(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Exchange, sock=sock, backlog=4096)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    import uvloop

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    sock = listening_socket(args.host, args.port)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(sock))


if __name__ == "__main__":
    main()

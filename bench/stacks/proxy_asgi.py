"""Candidates (b) and (c-ASGI): a raw ASGI app with an aiohttp client.

Served by uvicorn (`--loop uvloop --http httptools`) or by granian (`--interface asgi`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp
from _proxy_common import BAD_REQUEST, EXPECTED_AUTH, UNAUTHORIZED, UPSTREAM, UPSTREAM_HEADERS
from _proxy_common import upstream_payload as make_payload

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_AUTH = EXPECTED_AUTH.encode()
_JSON_HEADERS = [(b"content-type", b"application/json")]
_session: aiohttp.ClientSession | None = None


def _client() -> aiohttp.ClientSession:
    global _session
    if _session is None:
        connector = aiohttp.TCPConnector(limit=1024, keepalive_timeout=60)
        _session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
    return _session


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _JSON_HEADERS})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if _session is not None:
                await _session.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    if scope["path"] == "/health/ready":
        await _respond(send, 200, b'{"status":"ready"}')
        return
    auth = next((v for k, v in scope["headers"] if k == b"authorization"), None)
    if auth != _AUTH:
        await _respond(send, 401, UNAUTHORIZED)
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    payload = make_payload(b"".join(chunks))
    if payload is None:
        await _respond(send, 400, BAD_REQUEST)
        return
    async with _client().post(UPSTREAM, data=payload, headers=UPSTREAM_HEADERS) as resp:
        status, body = resp.status, await resp.read()
    await _respond(send, status, body)

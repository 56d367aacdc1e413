"""Candidate (c-RSGI): granian's native RSGI interface with an aiohttp client."""

from __future__ import annotations

from typing import Any

import aiohttp
from _proxy_common import BAD_REQUEST, EXPECTED_AUTH, UNAUTHORIZED, UPSTREAM, UPSTREAM_HEADERS
from _proxy_common import upstream_payload as make_payload

_JSON_HEADERS = [("content-type", "application/json")]
_session: aiohttp.ClientSession | None = None


def _client() -> aiohttp.ClientSession:
    global _session
    if _session is None:
        connector = aiohttp.TCPConnector(limit=1024, keepalive_timeout=60)
        _session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
    return _session


async def app(scope: Any, proto: Any) -> None:
    if scope.path == "/health/ready":
        proto.response_bytes(200, _JSON_HEADERS, b'{"status":"ready"}')
        return
    if scope.headers.get("authorization") != EXPECTED_AUTH:
        proto.response_bytes(401, _JSON_HEADERS, UNAUTHORIZED)
        return
    payload = make_payload(await proto())
    if payload is None:
        proto.response_bytes(400, _JSON_HEADERS, BAD_REQUEST)
        return
    async with _client().post(UPSTREAM, data=payload, headers=UPSTREAM_HEADERS) as resp:
        status, body = resp.status, await resp.read()
    proto.response_bytes(status, _JSON_HEADERS, body)

"""Candidate (a)/(d): aiohttp web server + uvloop, with an aiohttp or an httpx client.

python bench/stacks/proxy_aiohttp.py --port 9200 [--client aiohttp|httpx]
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import uvloop
from _proxy_common import BAD_REQUEST, EXPECTED_AUTH, UNAUTHORIZED, UPSTREAM, UPSTREAM_HEADERS
from _proxy_common import upstream_payload as make_payload
from aiohttp import web

Forward = Callable[[bytes], Awaitable[tuple[int, bytes]]]
FORWARD = web.AppKey("forward", Forward)


async def aiohttp_client(app: web.Application) -> AsyncIterator[None]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=1024, keepalive_timeout=60)
    session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    async def forward(payload: bytes) -> tuple[int, bytes]:
        async with session.post(UPSTREAM, data=payload, headers=UPSTREAM_HEADERS) as resp:
            return resp.status, await resp.read()

    app[FORWARD] = forward
    yield
    await session.close()


async def httpx_client(app: web.Application) -> AsyncIterator[None]:
    import httpx

    limits = httpx.Limits(max_connections=1024, max_keepalive_connections=1024)
    client = httpx.AsyncClient(limits=limits, timeout=60)

    async def forward(payload: bytes) -> tuple[int, bytes]:
        resp = await client.post(UPSTREAM, content=payload, headers=UPSTREAM_HEADERS)
        return resp.status_code, resp.content

    app[FORWARD] = forward
    yield
    await client.aclose()


async def chat(request: web.Request) -> web.Response:
    if request.headers.get("Authorization") != EXPECTED_AUTH:
        return web.Response(status=401, body=UNAUTHORIZED, content_type="application/json")
    payload = make_payload(await request.read())
    if payload is None:
        return web.Response(status=400, body=BAD_REQUEST, content_type="application/json")
    status, body = await request.app[FORWARD](payload)
    return web.Response(status=status, body=body, content_type="application/json")


async def ready(request: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ready"}', content_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--client", choices=("aiohttp", "httpx"), default="aiohttp")
    args = parser.parse_args()
    app = web.Application()
    app.cleanup_ctx.append(aiohttp_client if args.client == "aiohttp" else httpx_client)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/health/ready", ready)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None, backlog=4096)


if __name__ == "__main__":
    main()

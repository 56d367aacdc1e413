"""Pooled HTTP clients: one keep-alive aiohttp session per upstream origin."""

from __future__ import annotations

import aiohttp
import orjson
from yarl import URL


class HttpPool:
    """Sessions keyed by scheme://host:port, created on first use, closed together."""

    def __init__(self) -> None:
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def session(self, base_url: str, *, max_connections: int) -> aiohttp.ClientSession:
        origin = str(URL(base_url).origin())
        session = self._sessions.get(origin)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=max_connections,
                limit_per_host=0,
                keepalive_timeout=60,
                ttl_dns_cache=300,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                json_serialize=lambda obj: orjson.dumps(obj).decode(),
                # Provider responses must never be decompressed twice or cached by cookies.
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent",),
            )
            self._sessions[origin] = session
        return session

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()

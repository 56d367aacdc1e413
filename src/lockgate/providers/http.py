"""Pooled HTTP clients: one keep-alive connection pool per upstream origin."""

from __future__ import annotations

import ssl
from collections.abc import Mapping

from yarl import URL

from lockgate.providers.http_client import OriginPool, Response


class HttpPool:
    """Connection pools keyed by scheme://host:port, made on first use, closed together."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._origins: dict[tuple[str, str | None, int | None], OriginPool] = {}
        self._tls = tls  # the system's trusted CAs unless given (made at the first https)

    def origin(self, url: URL, *, max_connections: int, connect_timeout: float) -> OriginPool:
        key = (url.scheme, url.raw_host, url.port)
        pool = self._origins.get(key)
        if pool is None:
            if url.scheme not in ("http", "https"):
                raise ValueError(f"upstream URLs must be http or https, not {url.scheme!r}")
            tls = None
            if url.scheme == "https":
                if self._tls is None:
                    self._tls = ssl.create_default_context()
                tls = self._tls
            pool = OriginPool(url, limit=max_connections, connect_timeout=connect_timeout, tls=tls)
            self._origins[key] = pool
        return pool

    async def post(
        self,
        url: URL,
        body: bytes,
        headers: Mapping[str, str],
        *,
        seconds: float,
        connect_timeout: float,
        max_connections: int,
    ) -> Response:
        """POST `body`; the response's headers are in, its body still to read. The whole
        call must end within `seconds`."""
        pool = self.origin(url, max_connections=max_connections, connect_timeout=connect_timeout)
        return await pool.request("POST", url, body, headers, seconds)

    async def close(self) -> None:
        origins, self._origins = list(self._origins.values()), {}
        for pool in origins:
            pool.close()

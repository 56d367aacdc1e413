"""The HTTP side every remote adapter shares: auth headers, key pools, limits, POST and streams.

Adapters hold an `Upstream` (composition) and keep only what differs between providers:
URLs, translation, and the few facts passed in here as data (the auth header and its
prefix, the error mapper, the rate-limit header parser, a per-request signing hook).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Protocol

import orjson
from yarl import URL

from lockgate.core.errors import GatewayError, UpstreamError
from lockgate.core.types import JSON, RateLimitInfo
from lockgate.providers.errors import error_from_exception
from lockgate.providers.http import HttpPool
from lockgate.providers.http_client import Response, TransportError
from lockgate.providers.keys import KeyPool
from lockgate.providers.ratelimits import LimitsSeen

TRANSPORT_ERRORS = (TransportError, asyncio.TimeoutError)
# What a JSON API adapter sends with every request: its body, and the encodings the
# client decodes (providers/http_client.py).
JSON_HEADERS = {"Content-Type": "application/json", "Accept-Encoding": "gzip, deflate"}

LimitsParser = Callable[[Mapping[str, str]], RateLimitInfo | None]
# Builds the headers one request goes out with, from its URL, body and unsigned headers.
Signing = Callable[[URL, bytes, dict[str, str]], Awaitable[dict[str, str]]]


class ErrorMapper(Protocol):
    def __call__(
        self, status: int, body: bytes, headers: Mapping[str, str], *, secrets: list[str]
    ) -> GatewayError: ...


class Upstream:
    def __init__(
        self,
        *,
        base: str,
        http: HttpPool,
        timeout: float,
        connect_timeout: float,
        max_connections: int,
        headers: dict[str, str],
        errors: ErrorMapper,
        api_key: str | None = None,
        key_pool: KeyPool | None = None,
        auth_header: str = "",
        auth_prefix: str = "",
        on_limits: LimitsSeen | None = None,
        limits: LimitsParser | None = None,
        secrets: Callable[[], list[str]] | None = None,
        sign: Signing | None = None,
    ) -> None:
        self._base = base
        self._headers = dict(headers)
        if api_key and auth_header:
            self._headers[auth_header] = auth_prefix + api_key
        self._auth_header = auth_header
        self._auth_prefix = auth_prefix
        self._pool = key_pool
        self._errors = errors
        self._on_limits = on_limits
        self._limits = limits
        fixed = [api_key] if api_key else (key_pool.keys if key_pool else [])
        self._secrets = secrets if secrets is not None else lambda: fixed
        self._sign = sign
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._http = http
        self._max_connections = max_connections

    @property
    def secrets(self) -> list[str]:
        """What must never appear in an error message."""
        return self._secrets()

    def _auth(self, extra: dict[str, str] | None) -> tuple[dict[str, str], str | None]:
        """Request headers, and the pool key they carry (None without a pool)."""
        headers = {**self._headers, **extra} if extra else self._headers
        if self._pool is None:
            return headers, None
        key = self._pool.pick()
        return {**headers, self._auth_header: self._auth_prefix + key}, key

    def _error(self, status: int, raw: bytes, headers: Any, key: str | None) -> GatewayError:
        err = self._errors(status, raw, headers, secrets=self._secrets())
        return self._pool.failed(key, err) if self._pool is not None and key else err

    def _saw_limits(self, headers: Any) -> None:
        if self._on_limits is None or self._limits is None:
            return
        if (info := self._limits(headers)) is not None:
            self._on_limits(info)

    async def _send(
        self, url: URL, payload: JSON, extra: dict[str, str] | None
    ) -> tuple[Response, str | None]:
        data = orjson.dumps(payload)
        headers, key = self._auth(extra)
        if self._sign is not None:
            headers = await self._sign(url, data, headers)
        try:
            resp = await self._http.post(
                url,
                data,
                headers,
                seconds=self._timeout,
                connect_timeout=self._connect_timeout,
                max_connections=self._max_connections,
            )
        except TRANSPORT_ERRORS as exc:
            raise error_from_exception(exc) from exc
        return resp, key

    async def post(
        self, url: URL, payload: JSON, headers: dict[str, str] | None = None
    ) -> tuple[bytes, Mapping[str, str]]:
        """The body and headers of a 2xx answer; anything else is raised as a gateway error."""
        resp, key = await self._send(url, payload, headers)
        try:
            raw = await resp.read()
        except TRANSPORT_ERRORS as exc:
            raise error_from_exception(exc) from exc
        self._saw_limits(resp.headers)
        if resp.status >= 400:
            raise self._error(resp.status, raw, resp.headers, key)
        return raw, resp.headers

    async def post_json(self, url: URL, payload: JSON) -> bytes:
        raw, _ = await self.post(url, payload)
        return raw

    @asynccontextmanager
    async def stream(
        self, url: URL, payload: JSON, headers: dict[str, str] | None = None
    ) -> AsyncIterator[Response]:
        """An open 2xx streaming answer; transport failures inside are mapped to gateway
        errors. A non-2xx answer is read and raised before the body runs."""
        resp, key = await self._send(url, payload, headers)
        completed = False
        try:
            self._saw_limits(resp.headers)
            if resp.status >= 400:
                raw = await resp.read()
                raise self._error(resp.status, raw, resp.headers, key)
            yield resp
            completed = True
        except TRANSPORT_ERRORS as exc:
            raise error_from_exception(exc) from exc
        finally:
            # A finished stream returns its connection to the pool; an abandoned one (client
            # gone, error) closes it, which is what cancels the generation upstream.
            if completed:
                resp.release()
            else:
                resp.close()


def loads_object(raw: bytes, source: str = "upstream") -> JSON:
    """A JSON object from an upstream body, or an UpstreamError naming `source`."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError(f"{source} sent a body that is not JSON") from exc
    if not isinstance(data, dict):
        raise UpstreamError(f"{source} sent JSON that is not an object")
    return data

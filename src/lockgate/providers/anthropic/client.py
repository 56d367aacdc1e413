"""The Anthropic adapter's HTTP side: endpoint, auth headers, key pools, streaming calls.

Translation lives in `request.py`, `response.py` and `stream.py`; this module only moves
bytes and maps failures.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from yarl import URL

from lockgate.core.errors import BadRequest, GatewayError, UpstreamError
from lockgate.core.types import JSON, ChatResponse, ChunkStream, EmbeddingResponse, Usage
from lockgate.providers.anthropic.errors import anthropic_limits, error_from_response
from lockgate.providers.anthropic.request import DEFAULT_MAX_TOKENS, messages_request
from lockgate.providers.anthropic.response import chat_completion
from lockgate.providers.anthropic.stream import openai_chunks, sse_events
from lockgate.providers.errors import error_from_exception
from lockgate.providers.http import HttpPool
from lockgate.providers.keys import KeyPool
from lockgate.providers.ratelimits import LimitsSeen

if TYPE_CHECKING:
    from lockgate.config.schema import DeploymentConfig
    from lockgate.providers.registry import ProviderContext

API_BASE = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
_TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)


def from_config(cfg: DeploymentConfig, ctx: ProviderContext) -> Anthropic:
    keys = cfg.keys()  # none: a proxy in front of Anthropic adds the key itself
    return Anthropic(
        api_base=str(cfg.api_base) if cfg.api_base is not None else API_BASE,
        api_key=keys[0] if len(keys) == 1 else None,
        key_pool=ctx.key_pool(keys),
        on_limits=ctx.on_limits,
        http=ctx.http,
        timeout=cfg.timeout,
        connect_timeout=cfg.connect_timeout,
        max_connections=cfg.max_connections,
        headers=cfg.headers,
        default_max_tokens=cfg.default_max_tokens or DEFAULT_MAX_TOKENS,
    )


class Anthropic:
    name = "anthropic"

    def __init__(
        self,
        *,
        api_base: str,
        api_key: str | None,
        key_pool: KeyPool | None = None,
        on_limits: LimitsSeen | None = None,
        http: HttpPool,
        timeout: float,
        connect_timeout: float,
        max_connections: int,
        headers: dict[str, str],
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        self._base = api_base.rstrip("/")
        # The SDKs take the origin (https://api.anthropic.com); a base that already ends
        # in /v1 (a proxy written the OpenAI way) is taken as is.
        root = self._base if self._base.endswith("/v1") else f"{self._base}/v1"
        self._url = URL(f"{root}/messages")
        self._headers = {
            "Content-Type": "application/json",
            "Accept-Encoding": "gzip, deflate",
            "anthropic-version": API_VERSION,
            **headers,
        }
        if api_key:
            self._headers["x-api-key"] = api_key
        self._pool = key_pool
        self._on_limits = on_limits
        self._secrets = [api_key] if api_key else (key_pool.keys if key_pool else [])
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout)
        self._http = http
        self._max_connections = max_connections
        self._default_max_tokens = default_max_tokens

    def _auth(self) -> tuple[dict[str, str], str | None]:
        if self._pool is None:
            return self._headers, None
        key = self._pool.pick()
        return {**self._headers, "x-api-key": key}, key

    def _error(self, status: int, raw: bytes, headers: Any, key: str | None) -> GatewayError:
        err = error_from_response(status, raw, headers, secrets=self._secrets)
        return self._pool.failed(key, err) if self._pool is not None and key else err

    def _saw_limits(self, headers: Any) -> None:
        if self._on_limits is not None and (info := anthropic_limits(headers)) is not None:
            self._on_limits(info)

    async def _open(self, payload: JSON) -> tuple[aiohttp.ClientResponse, str | None]:
        """Send the request; a non-2xx answer is read, closed and raised."""
        headers, key = self._auth()
        session = self._http.session(self._base, max_connections=self._max_connections)
        try:
            resp = await session.post(
                self._url, data=orjson.dumps(payload), headers=headers, timeout=self._timeout
            )
        except _TRANSPORT_ERRORS as exc:
            raise error_from_exception(exc) from exc
        self._saw_limits(resp.headers)
        if resp.status >= 400:
            try:
                raw = await resp.read()
            except _TRANSPORT_ERRORS as exc:
                raise error_from_exception(exc) from exc
            finally:
                resp.release()
            raise self._error(resp.status, raw, resp.headers, key)
        return resp, key

    async def chat(self, body: JSON, model: str) -> ChatResponse:
        payload = messages_request(body, model, self._default_max_tokens, stream=False)
        resp, _ = await self._open(payload)
        try:
            raw = await resp.read()
        except _TRANSPORT_ERRORS as exc:
            raise error_from_exception(exc) from exc
        finally:
            resp.release()
        message = _loads_object(raw)
        data = chat_completion(message, model)
        return ChatResponse(body=data, usage=Usage.from_openai(data["usage"]))

    async def chat_stream(self, body: JSON, model: str) -> ChunkStream:
        payload = messages_request(body, model, self._default_max_tokens, stream=True)
        resp, _ = await self._open(payload)
        completed = False
        try:
            events = sse_events(resp.content.iter_any())
            async for chunk in openai_chunks(events, model, secrets=self._secrets):
                yield chunk
            completed = True
        except _TRANSPORT_ERRORS as exc:
            raise error_from_exception(exc) from exc
        finally:
            # A finished stream returns its connection to the pool; an abandoned one (client
            # gone, error) closes it, which is what cancels the generation upstream.
            if completed:
                resp.release()
            else:
                resp.close()

    async def embed(self, body: JSON, model: str) -> EmbeddingResponse:
        raise BadRequest(
            "Anthropic has no embeddings API: route embeddings to another provider.",
            param="model",
            code="unsupported_value",
        )


def _loads_object(raw: bytes) -> JSON:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError("upstream sent a body that is not JSON") from exc
    if not isinstance(data, dict):
        raise UpstreamError("upstream sent JSON that is not an object")
    return data

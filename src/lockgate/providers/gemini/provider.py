"""The Gemini adapter's client side: URLs, the `x-goog-api-key` header, key pools, HTTP calls.

Translation lives in `request.py`, `response.py`, `stream.py` and `embeddings.py`; this
module only moves bytes and maps transport and HTTP failures.
"""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
import orjson
from yarl import URL

from lockgate.core.errors import GatewayError, UpstreamError
from lockgate.core.types import JSON, ChatResponse, ChunkStream, EmbeddingResponse, Usage
from lockgate.providers.errors import error_from_exception
from lockgate.providers.gemini import embeddings, request, response, stream
from lockgate.providers.gemini.errors import error_from_body
from lockgate.providers.http import HttpPool
from lockgate.providers.keys import KeyPool

if TYPE_CHECKING:
    from lockgate.config.schema import DeploymentConfig
    from lockgate.providers.registry import ProviderContext

DEFAULT_API_BASE = "https://generativelanguage.googleapis.com/v1beta"
AUTH_HEADER = "x-goog-api-key"
_TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)
_MAX_CACHED_URLS = 256


def from_config(cfg: DeploymentConfig, ctx: ProviderContext) -> Gemini:
    keys = cfg.keys()
    return Gemini(
        api_base=str(cfg.api_base) if cfg.api_base is not None else DEFAULT_API_BASE,
        api_key=keys[0] if len(keys) == 1 else None,
        key_pool=ctx.key_pool(keys),
        http=ctx.http,
        timeout=cfg.timeout,
        connect_timeout=cfg.connect_timeout,
        max_connections=cfg.max_connections,
        headers=cfg.headers,
    )


class Gemini:
    name = "gemini"

    def __init__(
        self,
        *,
        api_base: str,
        api_key: str | None,
        key_pool: KeyPool | None = None,
        http: HttpPool,
        timeout: float,
        connect_timeout: float,
        max_connections: int,
        headers: dict[str, str],
    ) -> None:
        self._base = api_base.rstrip("/")
        self._headers = {
            "Content-Type": "application/json",
            "Accept-Encoding": "gzip, deflate",
            **headers,
        }
        if api_key:
            self._headers[AUTH_HEADER] = api_key
        self._pool = key_pool
        self._secrets = [api_key] if api_key else (key_pool.keys if key_pool else [])
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout)
        self._http = http
        self._max_connections = max_connections
        self._urls: dict[tuple[str, str], URL] = {}

    def _url(self, model: str, method: str) -> URL:
        """`{base}/models/{model}:{method}`, parsed once per model and method."""
        url = self._urls.get((model, method))
        if url is None:
            name = quote(model.removeprefix("models/"), safe="")
            path = f"{self._base}/models/{name}:{method}"
            url = URL(path + "?alt=sse" if method == "streamGenerateContent" else path)
            if len(self._urls) < _MAX_CACHED_URLS:  # a wildcard model names many models
                self._urls[(model, method)] = url
        return url

    def _auth(self) -> tuple[dict[str, str], str | None]:
        if self._pool is None:
            return self._headers, None
        key = self._pool.pick()
        return {**self._headers, AUTH_HEADER: key}, key

    def _error(self, status: int, raw: bytes, headers: Any, key: str | None) -> GatewayError:
        err = error_from_body(status, raw, headers, secrets=self._secrets)
        return self._pool.failed(key, err) if self._pool is not None and key else err

    def _session(self) -> aiohttp.ClientSession:
        return self._http.session(self._base, max_connections=self._max_connections)

    async def chat(self, body: JSON, model: str) -> ChatResponse:
        payload = request.chat_request(body)
        data = _loads_object(await self._post(self._url(model, "generateContent"), payload))
        result = response.completion(data, model)
        return ChatResponse(body=result, usage=Usage.from_openai(result["usage"]))

    async def embed(self, body: JSON, model: str) -> EmbeddingResponse:
        texts = embeddings.inputs(body)
        payload = embeddings.batch_request(body, model, texts)
        data = _loads_object(await self._post(self._url(model, "batchEmbedContents"), payload))
        result = embeddings.embeddings_body(data, model, texts, body.get("encoding_format"))
        return EmbeddingResponse(body=result, usage=Usage.from_openai(result["usage"]))

    async def _post(self, url: URL, payload: JSON) -> bytes:
        headers, key = self._auth()
        try:
            async with self._session().post(
                url, data=orjson.dumps(payload), headers=headers, timeout=self._timeout
            ) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise self._error(resp.status, raw, resp.headers, key)
                return raw
        except _TRANSPORT_ERRORS as exc:
            raise error_from_exception(exc) from exc

    async def chat_stream(self, body: JSON, model: str) -> ChunkStream:
        payload = request.chat_request(body)
        headers, key = self._auth()
        try:
            resp = await self._session().post(
                self._url(model, "streamGenerateContent"),
                data=orjson.dumps(payload),
                headers=headers,
                timeout=self._timeout,
            )
        except _TRANSPORT_ERRORS as exc:
            raise error_from_exception(exc) from exc
        completed = False
        try:
            if resp.status >= 400:
                raw = await resp.read()
                raise self._error(resp.status, raw, resp.headers, key)
            events = stream.sse_events(resp.content.iter_any())
            async with aclosing(stream.translate(events, model, self._secrets)) as chunks:
                async for chunk in chunks:
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


def _loads_object(raw: bytes) -> JSON:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError("Gemini sent a body that is not JSON") from exc
    if not isinstance(data, dict):
        raise UpstreamError("Gemini sent JSON that is not an object")
    return data

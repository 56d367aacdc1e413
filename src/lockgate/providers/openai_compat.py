"""The OpenAI-compatible adapter: OpenAI, vLLM, Ollama, llama.cpp, Groq, Together, ...

One adapter serves every provider that speaks OpenAI's wire format; differences between
them are data in `profiles.py`. Bodies pass through untouched except for `model` (and
`stream_options`, so that every stream reports its usage).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
import orjson
from yarl import URL

from lockgate.core.errors import GatewayError, UpstreamError
from lockgate.core.types import JSON, ChatResponse, Chunk, ChunkStream, EmbeddingResponse, Usage
from lockgate.providers.errors import error_from_exception, error_from_payload, error_from_response
from lockgate.providers.http import HttpPool
from lockgate.providers.keys import KeyPool
from lockgate.providers.profiles import PROFILES, Profile
from lockgate.providers.ratelimits import LimitsSeen, openai_limits

if TYPE_CHECKING:
    from lockgate.config.schema import DeploymentConfig
    from lockgate.providers.registry import ProviderContext

_TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)


def from_config(cfg: DeploymentConfig, ctx: ProviderContext) -> OpenAICompatible:
    profile = PROFILES[cfg.provider]
    keys = cfg.keys()
    return OpenAICompatible(
        profile=profile,
        api_base=str(cfg.api_base) if cfg.api_base is not None else profile.api_base,
        api_key=keys[0] if len(keys) == 1 else None,
        key_pool=ctx.key_pool(keys),
        on_limits=ctx.on_limits,
        http=ctx.http,
        timeout=cfg.timeout,
        connect_timeout=cfg.connect_timeout,
        max_connections=cfg.max_connections,
        headers=cfg.headers,
        api_version=cfg.api_version,
    )


_MAX_URLS = 1024  # per-model URLs kept parsed; a wildcard group could name unboundedly many


class OpenAICompatible:
    def __init__(
        self,
        *,
        profile: Profile,
        api_base: str,
        api_key: str | None,
        key_pool: KeyPool | None = None,
        on_limits: LimitsSeen | None = None,
        http: HttpPool,
        timeout: float,
        connect_timeout: float,
        max_connections: int,
        headers: dict[str, str],
        api_version: str | None = None,
    ) -> None:
        self.name = profile.name
        self._profile = profile
        self._base = api_base.rstrip("/")
        self._chat_path, self._embed_path, self._query = profile.endpoints(api_version)
        # Parsed once: aiohttp would parse a str URL on every request.
        self._urls: dict[tuple[str, str], URL] = {}
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Accept-Encoding": "gzip, deflate",
            **profile.extra_headers,
            **headers,
        }
        if api_key:
            self._headers[profile.auth_header] = profile.auth_prefix + api_key
        self._pool = key_pool
        self._on_limits = on_limits
        self._secrets = [api_key] if api_key else (key_pool.keys if key_pool else [])
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout)
        self._http = http
        self._max_connections = max_connections

    def _auth(self) -> tuple[dict[str, str], str | None]:
        """Request headers, and the pool key they carry (None without a pool)."""
        if self._pool is None:
            return self._headers, None
        key = self._pool.pick()
        return {**self._headers, self._profile.auth_header: self._profile.auth_prefix + key}, key

    def _error(self, status: int, raw: bytes, headers: Any, key: str | None) -> GatewayError:
        err = error_from_response(status, raw, headers, secrets=self._secrets)
        return self._pool.failed(key, err) if self._pool is not None and key else err

    def _saw_limits(self, headers: Any) -> None:
        if self._on_limits is not None and (info := openai_limits(headers)) is not None:
            self._on_limits(info)

    def _session(self) -> aiohttp.ClientSession:
        return self._http.session(self._base, max_connections=self._max_connections)

    def _url(self, path: str, model: str) -> URL:
        url = self._urls.get((path, model))
        if url is None:
            if len(self._urls) >= _MAX_URLS:
                self._urls.clear()
            url = URL(self._base + path.replace("{model}", quote(model, safe="")))
            if self._query:
                url = url.with_query(self._query)
            self._urls[(path, model)] = url
        return url

    def _payload(self, body: JSON, model: str) -> JSON:
        payload = {**body, "model": model}
        for ours, theirs in self._profile.renamed_params.items():
            if ours in payload:
                value = payload.pop(ours)
                payload.setdefault(theirs, value)
        return payload

    async def chat(self, body: JSON, model: str) -> ChatResponse:
        raw = await self._post(self._url(self._chat_path, model), self._payload(body, model))
        data = _loads_object(raw)
        return ChatResponse(body=data, usage=Usage.from_openai(data.get("usage")), raw=raw)

    async def embed(self, body: JSON, model: str) -> EmbeddingResponse:
        raw = await self._post(self._url(self._embed_path, model), {**body, "model": model})
        data = _loads_object(raw)
        return EmbeddingResponse(body=data, usage=Usage.from_openai(data.get("usage")), raw=raw)

    async def _post(self, url: URL, payload: JSON) -> bytes:
        headers, key = self._auth()
        try:
            async with self._session().post(
                url, data=orjson.dumps(payload), headers=headers, timeout=self._timeout
            ) as resp:
                raw = await resp.read()
                self._saw_limits(resp.headers)
                if resp.status >= 400:
                    raise self._error(resp.status, raw, resp.headers, key)
                return raw
        except _TRANSPORT_ERRORS as exc:
            raise error_from_exception(exc) from exc

    async def chat_stream(self, body: JSON, model: str) -> ChunkStream:
        payload = self._payload(body, model)
        payload["stream"] = True
        if self._profile.stream_usage:
            options = body.get("stream_options")
            payload["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
        headers, key = self._auth()
        try:
            resp = await self._session().post(
                self._url(self._chat_path, model),
                data=orjson.dumps(payload),
                headers=headers,
                timeout=self._timeout,
            )
        except _TRANSPORT_ERRORS as exc:
            raise error_from_exception(exc) from exc
        completed = False
        self._saw_limits(resp.headers)
        try:
            if resp.status >= 400:
                raw = await resp.read()
                raise self._error(resp.status, raw, resp.headers, key)
            async for chunk in _sse_chunks(resp.content):
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


async def _sse_chunks(content: aiohttp.StreamReader) -> ChunkStream:
    """Parse `data:` events of an OpenAI chat stream; end at `[DONE]`."""
    buffer = b""
    finished = False
    async for piece in content.iter_any():
        buffer += piece
        while (end := buffer.find(b"\n")) >= 0:
            line, buffer = buffer[:end].rstrip(b"\r"), buffer[end + 1 :]
            if not line.startswith(b"data:"):
                continue  # blank separators, `event:` lines, `: keep-alive` comments
            data = line[5:].strip()
            if data == b"[DONE]":
                return
            if not data:
                continue
            chunk = _loads_object(data)
            if "error" in chunk and "choices" not in chunk:
                raise _stream_error(chunk["error"])
            if not finished:
                finished = any(c.get("finish_reason") for c in chunk.get("choices") or ())
            yield Chunk(chunk, data)
    if not finished:
        raise UpstreamError("upstream stream ended before it was complete")


def _stream_error(err: Any) -> GatewayError:
    if not isinstance(err, dict):
        return UpstreamError(f"upstream stream failed: {err}")
    code = err.get("code") or err.get("type")
    return error_from_payload(
        500,
        str(err.get("message") or "upstream stream failed"),
        str(code) if code is not None else None,
        None,
    )


def _loads_object(raw: bytes) -> JSON:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError("upstream sent a body that is not JSON") from exc
    if not isinstance(data, dict):
        raise UpstreamError("upstream sent JSON that is not an object")
    return data

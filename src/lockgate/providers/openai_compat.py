"""The OpenAI-compatible adapter: OpenAI, vLLM, Ollama, llama.cpp, Groq, Together, ...

One adapter serves every provider that speaks OpenAI's wire format; differences between
them are data in `profiles.py`. Bodies pass through untouched except for `model` (and
`stream_options`, so that every stream reports its usage).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from yarl import URL

from lockgate.core.errors import GatewayError, UpstreamError
from lockgate.core.types import JSON, ChatResponse, Chunk, ChunkStream, EmbeddingResponse, Usage
from lockgate.providers.errors import error_from_payload, error_from_response
from lockgate.providers.http import HttpPool
from lockgate.providers.keys import KeyPool
from lockgate.providers.profiles import PROFILES, Profile
from lockgate.providers.ratelimits import LimitsSeen, openai_limits
from lockgate.providers.upstream import JSON_HEADERS, Upstream, loads_object

if TYPE_CHECKING:
    from lockgate.config.schema import DeploymentConfig
    from lockgate.providers.registry import ProviderContext


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
        # Parsed once per path and model, not on every request.
        self._urls: dict[tuple[str, str], URL] = {}
        self._upstream = Upstream(
            base=self._base,
            http=http,
            timeout=timeout,
            connect_timeout=connect_timeout,
            max_connections=max_connections,
            headers={
                **JSON_HEADERS,
                "Accept": "application/json",
                **profile.extra_headers,
                **headers,
            },
            errors=error_from_response,
            api_key=api_key,
            key_pool=key_pool,
            auth_header=profile.auth_header,
            auth_prefix=profile.auth_prefix,
            on_limits=on_limits,
            limits=openai_limits,
        )

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
        url = self._url(self._chat_path, model)
        raw = await self._upstream.post_json(url, self._payload(body, model))
        data = loads_object(raw)
        return ChatResponse(body=data, usage=Usage.from_openai(data.get("usage")), raw=raw)

    async def embed(self, body: JSON, model: str) -> EmbeddingResponse:
        url = self._url(self._embed_path, model)
        raw = await self._upstream.post_json(url, {**body, "model": model})
        data = loads_object(raw)
        return EmbeddingResponse(body=data, usage=Usage.from_openai(data.get("usage")), raw=raw)

    async def chat_stream(self, body: JSON, model: str) -> ChunkStream:
        payload = self._payload(body, model)
        payload["stream"] = True
        if self._profile.stream_usage:
            options = body.get("stream_options")
            payload["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
        url = self._url(self._chat_path, model)
        async with self._upstream.stream(url, payload) as resp:
            async for chunk in _sse_chunks(resp.iter_any()):
                yield chunk


async def _sse_chunks(pieces: AsyncIterator[bytes]) -> ChunkStream:
    """Parse `data:` events of an OpenAI chat stream; end at `[DONE]`."""
    buffer = b""
    finished = False
    async for piece in pieces:
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
            chunk = loads_object(data)
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

"""The Gemini adapter's client side: URLs, the `x-goog-api-key` header, key pools, HTTP calls.

Translation lives in `request.py`, `response.py`, `stream.py` and `embeddings.py`; this
module only moves bytes and maps transport and HTTP failures.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import TYPE_CHECKING
from urllib.parse import quote

from yarl import URL

from lockgate.core.types import JSON, ChatResponse, ChunkStream, EmbeddingResponse, Usage
from lockgate.providers.gemini import embeddings, request, response, stream
from lockgate.providers.gemini.errors import error_from_body
from lockgate.providers.http import HttpPool
from lockgate.providers.keys import KeyPool
from lockgate.providers.upstream import JSON_HEADERS, Upstream, loads_object

if TYPE_CHECKING:
    from lockgate.config.schema import DeploymentConfig
    from lockgate.providers.registry import ProviderContext

DEFAULT_API_BASE = "https://generativelanguage.googleapis.com/v1beta"
AUTH_HEADER = "x-goog-api-key"
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
        self._upstream = Upstream(
            base=self._base,
            http=http,
            timeout=timeout,
            connect_timeout=connect_timeout,
            max_connections=max_connections,
            headers={**JSON_HEADERS, **headers},
            errors=error_from_body,
            api_key=api_key,
            key_pool=key_pool,
            auth_header=AUTH_HEADER,
        )
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

    async def chat(self, body: JSON, model: str) -> ChatResponse:
        payload = request.chat_request(body)
        data = _loads_object(
            await self._upstream.post_json(self._url(model, "generateContent"), payload)
        )
        result = response.completion(data, model)
        return ChatResponse(body=result, usage=Usage.from_openai(result["usage"]))

    async def embed(self, body: JSON, model: str) -> EmbeddingResponse:
        texts = embeddings.inputs(body)
        payload = embeddings.batch_request(body, model, texts)
        data = _loads_object(
            await self._upstream.post_json(self._url(model, "batchEmbedContents"), payload)
        )
        result = embeddings.embeddings_body(data, model, texts, body.get("encoding_format"))
        return EmbeddingResponse(body=result, usage=Usage.from_openai(result["usage"]))

    async def chat_stream(self, body: JSON, model: str) -> ChunkStream:
        payload = request.chat_request(body)
        url = self._url(model, "streamGenerateContent")
        async with self._upstream.stream(url, payload) as resp:
            events = stream.sse_events(resp.iter_any())
            translated = stream.translate(events, model, self._upstream.secrets)
            async with aclosing(translated) as chunks:
                async for chunk in chunks:
                    yield chunk


def _loads_object(raw: bytes) -> JSON:
    return loads_object(raw, "Gemini")

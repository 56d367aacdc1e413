"""The Anthropic adapter's HTTP side: endpoint, auth headers, key pools, streaming calls.

Translation lives in `request.py`, `response.py` and `stream.py`; this module only moves
bytes and maps failures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from yarl import URL

from lockgate.core.errors import BadRequest
from lockgate.core.types import JSON, ChatResponse, ChunkStream, EmbeddingResponse, Usage
from lockgate.providers.anthropic.errors import anthropic_limits, error_from_response
from lockgate.providers.anthropic.request import DEFAULT_MAX_TOKENS, messages_request
from lockgate.providers.anthropic.response import chat_completion
from lockgate.providers.anthropic.stream import openai_chunks, sse_events
from lockgate.providers.http import HttpPool
from lockgate.providers.keys import KeyPool
from lockgate.providers.ratelimits import LimitsSeen
from lockgate.providers.upstream import JSON_HEADERS, Upstream, loads_object

if TYPE_CHECKING:
    from lockgate.config.schema import DeploymentConfig
    from lockgate.providers.registry import ProviderContext

API_BASE = "https://api.anthropic.com"
API_VERSION = "2023-06-01"


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
        base = api_base.rstrip("/")
        # The SDKs take the origin (https://api.anthropic.com); a base that already ends
        # in /v1 (a proxy written the OpenAI way) is taken as is.
        root = base if base.endswith("/v1") else f"{base}/v1"
        self._url = URL(f"{root}/messages")
        self._upstream = Upstream(
            base=base,
            http=http,
            timeout=timeout,
            connect_timeout=connect_timeout,
            max_connections=max_connections,
            headers={**JSON_HEADERS, "anthropic-version": API_VERSION, **headers},
            errors=error_from_response,
            api_key=api_key,
            key_pool=key_pool,
            auth_header="x-api-key",
            on_limits=on_limits,
            limits=anthropic_limits,
        )
        self._default_max_tokens = default_max_tokens

    async def chat(self, body: JSON, model: str) -> ChatResponse:
        payload = messages_request(body, model, self._default_max_tokens, stream=False)
        message = loads_object(await self._upstream.post_json(self._url, payload))
        data = chat_completion(message, model)
        return ChatResponse(body=data, usage=Usage.from_openai(data["usage"]))

    async def chat_stream(self, body: JSON, model: str) -> ChunkStream:
        payload = messages_request(body, model, self._default_max_tokens, stream=True)
        async with self._upstream.stream(self._url, payload) as resp:
            events = sse_events(resp.iter_any())
            async for chunk in openai_chunks(events, model, secrets=self._upstream.secrets):
                yield chunk

    async def embed(self, body: JSON, model: str) -> EmbeddingResponse:
        raise BadRequest(
            "Anthropic has no embeddings API: route embeddings to another provider.",
            param="model",
            code="unsupported_value",
        )

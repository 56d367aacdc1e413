"""The Bedrock adapter: Converse, ConverseStream and Titan embeddings over lockgate's own
aiohttp pool, each request signed with SigV4 (botocore's signer, not boto3's client)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from yarl import URL

from lockgate.core.errors import GatewayError
from lockgate.core.types import JSON, ChatResponse, ChunkStream, EmbeddingResponse, Usage
from lockgate.providers.bedrock import embeddings
from lockgate.providers.bedrock.auth import Signer
from lockgate.providers.bedrock.errors import error_from_response
from lockgate.providers.bedrock.request import converse_body
from lockgate.providers.bedrock.response import chat_completion
from lockgate.providers.bedrock.stream import StreamTranslator, stream_chunks
from lockgate.providers.http import HttpPool
from lockgate.providers.upstream import Upstream, loads_object

if TYPE_CHECKING:
    from lockgate.config.schema import DeploymentConfig
    from lockgate.providers.registry import ProviderContext

_JSON = "application/json"
_EVENT_STREAM = "application/vnd.amazon.eventstream"
EMBED_CONCURRENCY = 8  # Titan calls in flight for one embeddings request


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def from_config(cfg: DeploymentConfig, ctx: ProviderContext) -> Bedrock:
    region = cfg.region or ""
    signer = Signer(
        region,
        access_key=_secret(cfg.aws_access_key_id),
        secret_key=_secret(cfg.aws_secret_access_key),
        session_token=_secret(cfg.aws_session_token),
    )
    default = f"https://bedrock-runtime.{region}.amazonaws.com"
    return Bedrock(
        api_base=str(cfg.api_base) if cfg.api_base is not None else default,
        signer=signer,
        http=ctx.http,
        timeout=cfg.timeout,
        connect_timeout=cfg.connect_timeout,
        max_connections=cfg.max_connections,
        headers=cfg.headers,
    )


class Bedrock:
    name = "bedrock"

    def __init__(
        self,
        *,
        api_base: str,
        signer: Signer,
        http: HttpPool,
        timeout: float,
        connect_timeout: float,
        max_connections: int,
        headers: dict[str, str],
    ) -> None:
        self._base = api_base.rstrip("/")
        self._signer = signer
        self._upstream = Upstream(
            base=self._base,
            http=http,
            timeout=timeout,
            connect_timeout=connect_timeout,
            max_connections=max_connections,
            headers=headers,
            errors=error_from_response,
            secrets=lambda: signer.secrets,
            sign=self._sign,
        )

    def _url(self, model: str, action: str) -> str:
        # Model ids hold ':' (`anthropic.claude-3-5-sonnet-20240620-v1:0`) and ARNs hold '/':
        # one path segment, percent-encoded, exactly as signed.
        return f"{self._base}/model/{quote(model, safe='')}/{action}"

    async def _sign(self, url: URL, data: bytes, headers: dict[str, str]) -> dict[str, str]:
        credentials = await self._signer.credentials()
        return self._signer.sign(credentials, str(url), data, headers)

    async def _post(self, url: str, payload: JSON) -> tuple[JSON, str]:
        """The JSON answer and its request id."""
        raw, headers = await self._upstream.post(
            URL(url, encoded=True), payload, {"Content-Type": _JSON, "Accept": _JSON}
        )
        return loads_object(raw, "Bedrock"), _request_id(headers)

    async def chat(self, body: JSON, model: str) -> ChatResponse:
        data, request_id = await self._post(self._url(model, "converse"), converse_body(body))
        result = chat_completion(data, model, f"chatcmpl-{request_id}", int(time.time()))
        return ChatResponse(body=result, usage=Usage.from_openai(result["usage"]))

    async def chat_stream(self, body: JSON, model: str) -> ChunkStream:
        payload = converse_body(body)
        url = URL(self._url(model, "converse-stream"), encoded=True)
        accept = {"Content-Type": _JSON, "Accept": _EVENT_STREAM}
        async with self._upstream.stream(url, payload, accept) as resp:
            translator = StreamTranslator(
                f"chatcmpl-{_request_id(resp.headers)}", model, int(time.time())
            )
            async for chunk in stream_chunks(resp.iter_any(), translator):
                yield chunk

    async def embed(self, body: JSON, model: str) -> EmbeddingResponse:
        inputs = embeddings.texts(body)
        url = self._url(model, "invoke")
        results: list[tuple[list[float], int]] = [([], 0)] * len(inputs)
        pending = iter(enumerate(inputs))

        async def worker() -> None:
            for index, text in pending:
                data, _ = await self._post(url, embeddings.invoke_body(text, body))
                results[index] = embeddings.vector(data)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(EMBED_CONCURRENCY, len(inputs))):
                    group.create_task(worker())
        except ExceptionGroup as grouped:
            first = grouped.exceptions[0]
            if isinstance(first, GatewayError):
                raise first from None
            raise
        result = embeddings.embeddings_body(results, body, model)
        return EmbeddingResponse(body=result, usage=Usage.from_openai(result["usage"]))


def _request_id(headers: Any) -> str:
    value = headers.get("x-amzn-RequestId")
    return value if isinstance(value, str) and value else uuid.uuid4().hex

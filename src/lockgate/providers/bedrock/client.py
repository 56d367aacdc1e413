"""The Bedrock adapter: Converse, ConverseStream and Titan embeddings over lockgate's own
aiohttp pool, each request signed with SigV4 (botocore's signer, not boto3's client)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
import orjson
from yarl import URL

from lockgate.core.errors import GatewayError, UpstreamError
from lockgate.core.types import JSON, ChatResponse, ChunkStream, EmbeddingResponse, Usage
from lockgate.providers.bedrock import embeddings
from lockgate.providers.bedrock.auth import Signer
from lockgate.providers.bedrock.errors import error_from_response
from lockgate.providers.bedrock.request import converse_body
from lockgate.providers.bedrock.response import chat_completion
from lockgate.providers.bedrock.stream import StreamTranslator, stream_chunks
from lockgate.providers.errors import error_from_exception
from lockgate.providers.http import HttpPool

if TYPE_CHECKING:
    from lockgate.config.schema import DeploymentConfig
    from lockgate.providers.registry import ProviderContext

_TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)
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
        self._http = http
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout)
        self._max_connections = max_connections
        self._headers = dict(headers)

    def _url(self, model: str, action: str) -> str:
        # Model ids hold ':' (`anthropic.claude-3-5-sonnet-20240620-v1:0`) and ARNs hold '/':
        # one path segment, percent-encoded, exactly as signed.
        return f"{self._base}/model/{quote(model, safe='')}/{action}"

    async def _send(self, url: str, payload: JSON, accept: str) -> aiohttp.ClientResponse:
        data = orjson.dumps(payload)
        credentials = await self._signer.credentials()
        headers = {**self._headers, "Content-Type": _JSON, "Accept": accept}
        signed = self._signer.sign(credentials, url, data, headers)
        try:
            return await self._session().post(
                URL(url, encoded=True), data=data, headers=signed, timeout=self._timeout
            )
        except _TRANSPORT_ERRORS as exc:
            raise error_from_exception(exc) from exc

    def _session(self) -> aiohttp.ClientSession:
        return self._http.session(self._base, max_connections=self._max_connections)

    def _error(self, status: int, raw: bytes, headers: Any) -> GatewayError:
        return error_from_response(status, raw, headers, secrets=self._signer.secrets)

    async def _post(self, url: str, payload: JSON) -> tuple[JSON, str]:
        """The JSON answer and its request id."""
        resp = await self._send(url, payload, _JSON)
        try:
            async with resp:
                raw = await resp.read()
        except _TRANSPORT_ERRORS as exc:
            raise error_from_exception(exc) from exc
        if resp.status >= 400:
            raise self._error(resp.status, raw, resp.headers)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError("Bedrock sent a body that is not JSON") from exc
        if not isinstance(data, dict):
            raise UpstreamError("Bedrock sent JSON that is not an object")
        return data, _request_id(resp.headers)

    async def chat(self, body: JSON, model: str) -> ChatResponse:
        data, request_id = await self._post(self._url(model, "converse"), converse_body(body))
        result = chat_completion(data, model, f"chatcmpl-{request_id}", int(time.time()))
        return ChatResponse(body=result, usage=Usage.from_openai(result["usage"]))

    async def chat_stream(self, body: JSON, model: str) -> ChunkStream:
        payload = converse_body(body)
        resp = await self._send(self._url(model, "converse-stream"), payload, _EVENT_STREAM)
        completed = False
        try:
            if resp.status >= 400:
                raise self._error(resp.status, await resp.read(), resp.headers)
            translator = StreamTranslator(
                f"chatcmpl-{_request_id(resp.headers)}", model, int(time.time())
            )
            async for chunk in stream_chunks(resp.content.iter_any(), translator):
                yield chunk
            completed = True
        except _TRANSPORT_ERRORS as exc:
            raise error_from_exception(exc) from exc
        finally:
            # A finished stream returns its connection to the pool; an abandoned one closes
            # it, which is what stops the generation upstream.
            if completed:
                resp.release()
            else:
                resp.close()

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

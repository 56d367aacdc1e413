"""The provider plug-in seam: what every adapter implements."""

from __future__ import annotations

from typing import Protocol

from lockgate.core.types import JSON, ChatResponse, ChunkStream, EmbeddingResponse


class Provider(Protocol):
    """One configured upstream (base URL, credentials, profile), called with a model name.

    Adapters take OpenAI-shaped bodies and return OpenAI-shaped results; they raise
    `lockgate.core.errors.GatewayError` subclasses for every failure. ``chat_stream`` is an
    async generator: errors before the first chunk are raised from the first ``__anext__``;
    closing it early (``aclose``) must cancel the upstream request.
    """

    name: str

    async def chat(self, body: JSON, model: str) -> ChatResponse: ...

    def chat_stream(self, body: JSON, model: str) -> ChunkStream: ...

    async def embed(self, body: JSON, model: str) -> EmbeddingResponse: ...

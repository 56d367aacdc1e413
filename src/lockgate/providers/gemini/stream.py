"""Gemini `streamGenerateContent?alt=sse` -> OpenAI `chat.completion.chunk`s.

Each SSE `data:` event is a whole GenerateContentResponse holding the next parts of each
candidate. A candidate's first chunk carries the assistant role; its finishReason becomes
a chunk of its own (an empty delta with finish_reason); Gemini repeats usageMetadata on
the events and the last one is final, so the usage chunk comes after the stream ends.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from lockgate.core.errors import UpstreamError
from lockgate.core.types import JSON, Chunk, ChunkStream
from lockgate.providers.gemini.errors import error_from_body
from lockgate.providers.gemini.response import (
    completion_id,
    finish_reason,
    raise_if_blocked,
    split_parts,
    usage,
)


async def sse_events(lines: AsyncIterator[bytes]) -> AsyncIterator[JSON]:
    """The JSON object of each `data:` event (Gemini separates events with CRLF CRLF)."""
    buffer = b""
    async for piece in lines:
        buffer += piece
        while (end := buffer.find(b"\n")) >= 0:
            line, buffer = buffer[:end].rstrip(b"\r"), buffer[end + 1 :]
            if line.startswith(b"data:") and (data := line[5:].strip()):
                try:
                    event = orjson.loads(data)
                except orjson.JSONDecodeError as exc:
                    raise UpstreamError("Gemini sent a stream event that is not JSON") from exc
                if isinstance(event, dict):
                    yield event


class StreamTranslator:
    """Turns the events of one stream into chunks; `finish()` gives the usage chunk."""

    def __init__(self, model: str, secrets: list[str]) -> None:
        self._model = model
        self._secrets = secrets
        self._id: str | None = None
        self._created = int(time.time())
        self._started: set[int] = set()
        self._called: dict[int, int] = {}  # candidate index -> tool calls so far
        self._finished: set[int] = set()
        self._usage: Any = None

    def chunks(self, event: JSON) -> list[Chunk]:
        if "error" in event and "candidates" not in event:
            raise error_from_body(500, orjson.dumps(event), {}, secrets=self._secrets)
        raise_if_blocked(event)
        if self._id is None:
            self._id = completion_id(event)
        if isinstance(event.get("modelVersion"), str):
            self._model = event["modelVersion"]
        if event.get("usageMetadata") is not None:
            self._usage = event["usageMetadata"]
        out: list[Chunk] = []
        for position, candidate in enumerate(event.get("candidates") or ()):
            if isinstance(candidate, dict):
                index = candidate.get("index")
                index = index if isinstance(index, int) else position
                out.extend(self._candidate(index, candidate))
        return out

    def _candidate(self, index: int, candidate: JSON) -> list[Chunk]:
        content = candidate.get("content")
        text, calls = split_parts(content.get("parts") if isinstance(content, dict) else None)
        delta: JSON = {}
        if index not in self._started:
            self._started.add(index)
            delta["role"] = "assistant"
            if not calls:
                delta["content"] = ""
        if text:
            delta["content"] = text
        if calls:
            first = self._called.get(index, 0)
            delta["tool_calls"] = [{"index": first + n, **call} for n, call in enumerate(calls)]
            self._called[index] = first + len(calls)
        out = [self._chunk(index, delta, None)] if delta else []
        reason = candidate.get("finishReason")
        if reason and index not in self._finished:
            self._finished.add(index)
            out.append(self._chunk(index, {}, finish_reason(reason, index in self._called)))
        return out

    def _chunk(self, index: int, delta: JSON, finish: str | None) -> Chunk:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return Chunk(self._head([choice]))

    def _head(self, choices: list[JSON]) -> JSON:
        return {
            "id": self._id or completion_id({}),
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": choices,
        }

    def finish(self) -> Chunk:
        """The closing usage chunk; a stream whose candidates never finished is broken."""
        if not self._finished or self._finished != self._started:
            raise UpstreamError("Gemini's stream ended before it was complete")
        return Chunk({**self._head([]), "usage": usage(self._usage)})


async def translate(events: AsyncIterator[JSON], model: str, secrets: list[str]) -> ChunkStream:
    translator = StreamTranslator(model, secrets)
    async for event in events:
        for chunk in translator.chunks(event):
            yield chunk
    yield translator.finish()

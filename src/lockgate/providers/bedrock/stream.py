"""ConverseStream: `application/vnd.amazon.eventstream` messages -> OpenAI chunks.

The binary framing is decoded by botocore's `EventStreamBuffer`. Events map as:
messageStart -> the role chunk; contentBlockStart (toolUse) -> a tool call's id and name;
contentBlockDelta -> text, a tool call's argument JSON piece, or reasoning text;
messageStop -> the chunk with `finish_reason`; metadata -> the usage chunk (no choices).
Exception events end the stream with the mapped gateway error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import orjson
from botocore.eventstream import EventStreamBuffer, ParserError

from lockgate.core.errors import GatewayError, UpstreamError
from lockgate.core.types import JSON, Chunk, ChunkStream
from lockgate.providers.bedrock.errors import bedrock_error, error_type
from lockgate.providers.bedrock.response import finish_reason, usage


class StreamTranslator:
    """Turns one stream's events into chunks; remembers tool call indexes and completion."""

    def __init__(self, completion_id: str, model: str, created: int) -> None:
        self._head: JSON = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }
        self._tools: dict[Any, int] = {}  # contentBlockIndex -> tool_calls index
        self.stopped = False  # messageStop seen: the answer is complete
        self.usage_sent = False

    def _chunk(self, delta: JSON, finish: str | None = None) -> Chunk:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return Chunk({**self._head, "choices": [choice]})

    def usage_chunk(self, token_usage: Any) -> Chunk:
        self.usage_sent = True
        return Chunk({**self._head, "choices": [], "usage": usage(token_usage)})

    def event(self, kind: str, payload: JSON) -> Chunk | None:
        if kind == "contentBlockDelta":
            return self._delta(payload)
        if kind == "messageStart":
            return self._chunk({"role": payload.get("role", "assistant"), "content": ""})
        if kind == "contentBlockStart":
            start = payload.get("start")
            tool = start.get("toolUse") if isinstance(start, dict) else None
            if not isinstance(tool, dict):
                return None
            index = self._tools.setdefault(payload.get("contentBlockIndex"), len(self._tools))
            call = {
                "index": index,
                "id": tool.get("toolUseId"),
                "type": "function",
                "function": {"name": tool.get("name"), "arguments": ""},
            }
            return self._chunk({"tool_calls": [call]})
        if kind == "messageStop":
            self.stopped = True
            return self._chunk({}, finish_reason(payload.get("stopReason")))
        if kind == "metadata":
            return self.usage_chunk(payload.get("usage"))
        return None  # contentBlockStop, and events added after this was written

    def _delta(self, payload: JSON) -> Chunk | None:
        delta = payload.get("delta")
        if not isinstance(delta, dict):
            return None
        if isinstance(delta.get("text"), str):
            return self._chunk({"content": delta["text"]})
        tool = delta.get("toolUse")
        if isinstance(tool, dict):
            index = self._tools.setdefault(payload.get("contentBlockIndex"), len(self._tools))
            piece = {"index": index, "function": {"arguments": tool.get("input", "")}}
            return self._chunk({"tool_calls": [piece]})
        reasoning = delta.get("reasoningContent")
        if isinstance(reasoning, dict) and isinstance(reasoning.get("text"), str):
            return self._chunk({"reasoning_content": reasoning["text"]})
        return None


def _exception(headers: dict[str, Any], payload: bytes) -> GatewayError:
    message = "Bedrock stream failed"
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        message = data["message"]
    if headers.get(":message-type") == "error":
        kind = error_type(str(headers.get(":error-code", "")))
        message = str(headers.get(":error-message") or message)
    else:
        kind = error_type(str(headers.get(":exception-type", "")))
    return bedrock_error(500, kind, message)


async def stream_chunks(pieces: AsyncIterator[bytes], translator: StreamTranslator) -> ChunkStream:
    """Decode the event stream and yield chunks; the last is always a usage chunk.

    The role chunk (messageStart) is held until the next chunk is ready: Bedrock sends it
    before the model has produced anything, and an exception event then (throttling, a
    model error) should fail the first ``__anext__``, where the pipeline can still retry."""
    buffer = EventStreamBuffer()
    held: Chunk | None = None
    async for piece in pieces:
        buffer.add_data(piece)
        try:
            messages = list(buffer)
        except ParserError as exc:
            raise UpstreamError(f"Bedrock sent a malformed event stream: {exc}") from exc
        for message in messages:
            # botocore-stubs types `headers` as int; botocore gives the parsed dict.
            headers = cast(dict[str, Any], message.headers)
            if headers.get(":message-type", "event") != "event":
                raise _exception(headers, message.payload)
            try:
                payload = orjson.loads(message.payload) if message.payload else {}
            except orjson.JSONDecodeError as exc:
                raise UpstreamError("Bedrock sent an event that is not JSON") from exc
            kind = str(headers.get(":event-type", ""))
            chunk = translator.event(kind, payload)
            if chunk is None:
                continue
            if kind == "messageStart":
                held = chunk
                continue
            if held is not None:
                yield held
                held = None
            yield chunk
    if not translator.stopped:
        raise UpstreamError("upstream stream ended before it was complete")
    if not translator.usage_sent:
        yield translator.usage_chunk(None)  # the pipeline bills from a final usage chunk

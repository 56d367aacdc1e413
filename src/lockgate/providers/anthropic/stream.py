"""Anthropic's Messages event stream -> OpenAI ``chat.completion.chunk``s.

Anthropic sends ``message_start``, then per content block ``content_block_start``, deltas
and ``content_block_stop``, then ``message_delta`` (stop reason, cumulative usage) and
``message_stop``, with ``ping`` events anywhere and an ``error`` event when it fails after
the 200. lockgate turns that into a role chunk, content / tool-call argument chunks, a
chunk carrying the finish reason, and a final usage-only chunk.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson

from lockgate.core.errors import UpstreamError
from lockgate.core.types import JSON, Chunk, ChunkStream
from lockgate.providers.anthropic.errors import error_from_event
from lockgate.providers.anthropic.response import finish_reason, openai_usage, refused


async def sse_events(lines: AsyncIterator[bytes]) -> AsyncIterator[tuple[str, bytes]]:
    """(event name, data) for each server-sent event; a missing name is ``message``."""
    name = ""
    data: list[bytes] = []
    buffer = b""
    async for piece in lines:
        *complete, buffer = (buffer + piece).split(b"\n")
        for raw in complete:
            line = raw.rstrip(b"\r")
            if not line:
                if data:
                    yield name or "message", b"\n".join(data)
                name, data = "", []
            elif line.startswith(b"event:"):
                name = line[6:].strip().decode()
            elif line.startswith(b"data:"):
                data.append(line[5:].strip())
            # `:` comments, `id:` and `retry:` lines carry nothing lockgate needs.
    if data:
        yield name or "message", b"\n".join(data)


async def openai_chunks(
    events: AsyncIterator[tuple[str, bytes]], model: str, *, secrets: list[str]
) -> ChunkStream:
    """The OpenAI chunks of one Anthropic stream; raises the mapped error of an ``error``
    event, and `UpstreamError` when the stream ends before its message did."""
    state = _Translation(model)
    async for name, data in events:
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError("upstream sent a stream event that is not JSON") from exc
        if not isinstance(event, dict):
            continue
        kind = event.get("type") or name
        if kind == "error":
            raise error_from_event(event, secrets=secrets)
        for chunk in state.on(kind, event):
            yield chunk
        if state.stopped:
            return
    if state.finish is None:
        raise UpstreamError("upstream stream ended before it was complete")
    yield state.usage_chunk()  # message_delta came, message_stop did not: the answer is whole


class _Translation:
    """The state one stream needs: ids, which content block is which tool call, usage."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = "chatcmpl-anthropic"
        self.created = int(time.time())
        self.usage: JSON = {}
        self.tools: dict[int, int] = {}  # content block index -> OpenAI tool call index
        self.said = False  # any text or tool call went out
        self.opened = False  # the role chunk went out
        self.finish: str | None = None
        self.stopped = False
        self.message: JSON = {}

    def on(self, kind: str, event: JSON) -> Iterator[Chunk]:
        if kind == "message_start":
            self._start(event.get("message"))
        elif kind == "content_block_start":
            yield from self._block_start(event)
        elif kind == "content_block_delta":
            yield from self._block_delta(event)
        elif kind == "message_delta":
            yield from self._message_delta(event)
        elif kind == "message_stop":
            if self.finish is None:
                raise UpstreamError("upstream stream stopped without a stop reason")
            self.stopped = True
            yield self.usage_chunk()
        # ping, content_block_stop and event types added later change nothing here.

    def _start(self, message: Any) -> None:
        if not isinstance(message, dict):
            return
        self.message = message
        if isinstance(message.get("id"), str):
            self.id = f"chatcmpl-{message['id']}"
        if isinstance(message.get("model"), str):
            self.model = message["model"]
        self._add_usage(message.get("usage"))

    def _add_usage(self, usage: Any) -> None:
        # message_delta's counts are cumulative: the latest value of each field wins.
        if isinstance(usage, dict):
            self.usage.update({k: v for k, v in usage.items() if v is not None})

    def _block_start(self, event: JSON) -> Iterator[Chunk]:
        block = event.get("content_block")
        if not isinstance(block, dict):
            return
        yield from self._open()
        if block.get("type") == "tool_use":
            index = len(self.tools)
            self.tools[_index(event)] = index
            self.said = True
            call = {
                "index": index,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            yield self._chunk({"tool_calls": [call]})
        elif block.get("type") == "text" and block.get("text"):
            self.said = True
            yield self._chunk({"content": block["text"]})

    def _block_delta(self, event: JSON) -> Iterator[Chunk]:
        delta = event.get("delta")
        if not isinstance(delta, dict):
            return
        kind = delta.get("type")
        if kind == "text_delta" and isinstance(delta.get("text"), str):
            self.said = True
            yield self._chunk({"content": delta["text"]})
        elif kind == "input_json_delta" and delta.get("partial_json"):
            index = self.tools.get(_index(event))
            if index is None:
                raise UpstreamError("upstream streamed tool input for an unknown block")
            piece = {"index": index, "function": {"arguments": delta["partial_json"]}}
            yield self._chunk({"tool_calls": [piece]})
        elif kind == "thinking_delta" and isinstance(delta.get("thinking"), str):
            yield self._chunk({"reasoning_content": delta["thinking"]})

    def _message_delta(self, event: JSON) -> Iterator[Chunk]:
        self._add_usage(event.get("usage"))
        delta = event.get("delta")
        stop = delta.get("stop_reason") if isinstance(delta, dict) else None
        if stop is None:
            return
        if stop == "refusal" and not self.said:
            # Nothing was answered: a content-filter error the client can act on, raised
            # before any chunk went out, like OpenAI's.
            raise refused({**self.message, **(delta if isinstance(delta, dict) else {})})
        yield from self._open()
        self.finish = finish_reason(stop)
        yield self._chunk({}, self.finish)

    def _open(self) -> Iterator[Chunk]:
        """The role chunk, sent with the first content rather than at message_start, so
        that a refusal that says nothing is an error and not an empty answer."""
        if not self.opened:
            self.opened = True
            yield self._chunk({"role": "assistant", "content": ""})

    def _chunk(self, delta: JSON, finish: str | None = None) -> Chunk:
        return Chunk(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
        )

    def usage_chunk(self) -> Chunk:
        return Chunk(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": openai_usage(self.usage),
            }
        )


def _index(event: JSON) -> int:
    index = event.get("index")
    return index if isinstance(index, int) else -1

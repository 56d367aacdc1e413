"""OpenAI chat.completion.chunk streams -> Anthropic's Messages SSE event sequence.

message_start, then per content block: content_block_start, content_block_delta...,
content_block_stop (a `ping` after the first block starts), then message_delta with
the stop reason and usage, and message_stop. A failure after the first byte ends the
stream with an `error` event in Anthropic's error shape instead.
"""

from __future__ import annotations

import os
from contextlib import suppress
from typing import Any

import orjson

from lockgate.api.anthropic_errors import anthropic_error_body, anthropic_headers
from lockgate.api.anthropic_wire import anthropic_usage, message_id, stop_reason
from lockgate.api.exchange import SSE_HEADERS, Exchange
from lockgate.core.errors import GatewayError
from lockgate.core.types import JSON, ChatRequest, ChunkStream, RequestContext, Usage


def event(name: str, data: JSON) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


_PING = event("ping", {"type": "ping"})
_STOP = event("message_stop", {"type": "message_stop"})


class EventTranslator:
    """Turns chunks into Anthropic events, keeping track of the open content block."""

    def __init__(self, req: ChatRequest) -> None:
        self.req = req
        self.index = -1  # the open block's index; -1 before the first block
        self.open: str | None = None  # "text" or "tool_use", None when no block is open
        self.tool_blocks: dict[int, int] = {}  # OpenAI tool call index -> block index
        self.pinged = False
        self.finish: Any = None
        self.choice: JSON = {}
        self.usage: JSON | None = None

    def start(self, usage: JSON | None) -> bytes:
        """message_start, with the usage known so far (upstreams report it at the end)."""
        message: JSON = {
            "id": message_id(),
            "type": "message",
            "role": "assistant",
            "model": self.req.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": anthropic_usage(Usage.from_openai(usage)),
        }
        return event("message_start", {"type": "message_start", "message": message})

    def chunk(self, data: JSON) -> bytes:
        if data.get("usage"):
            self.usage = data["usage"]
        choices = data.get("choices")
        if not choices:
            return b""
        choice = next((c for c in choices if c.get("index", 0) == 0), None)
        if choice is None:
            return b""  # lockgate never asks for n > 1 here; other choices are ignored
        out: list[bytes] = []
        delta = choice.get("delta") or {}
        text = delta.get("content") or delta.get("refusal")
        if isinstance(text, str) and text:
            if self.open != "text":
                self._begin(out, {"type": "text", "text": ""}, "text")
            out.append(self._delta({"type": "text_delta", "text": text}, self.index))
        for call in delta.get("tool_calls") or ():
            self._tool_call(out, call)
        if choice.get("finish_reason"):
            self.finish = choice["finish_reason"]
            self.choice = choice
        return b"".join(out)

    def _tool_call(self, out: list[bytes], call: JSON) -> None:
        position = call.get("index", 0)
        function = call.get("function") or {}
        block = self.tool_blocks.get(position)
        if block is None:
            tool: JSON = {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{os.urandom(12).hex()}",
                "name": function.get("name") or "",
                "input": {},
            }
            self._begin(out, tool, "tool_use")
            block = self.tool_blocks[position] = self.index
        arguments = function.get("arguments")
        if arguments:
            # A fragment of an earlier, interleaved call keeps its own block's index.
            out.append(self._delta({"type": "input_json_delta", "partial_json": arguments}, block))

    def _begin(self, out: list[bytes], block: JSON, kind: str) -> None:
        self._close(out)
        self.index += 1
        self.open = kind
        start = {"type": "content_block_start", "index": self.index, "content_block": block}
        out.append(event("content_block_start", start))
        if not self.pinged:
            self.pinged = True
            out.append(_PING)

    def _close(self, out: list[bytes]) -> None:
        if self.open is not None:
            out.append(
                event("content_block_stop", {"type": "content_block_stop", "index": self.index})
            )
            self.open = None

    @staticmethod
    def _delta(delta: JSON, index: int) -> bytes:
        return event(
            "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        )

    def end(self) -> bytes:
        out: list[bytes] = []
        self._close(out)
        if not self.pinged:
            out.append(_PING)
        reason, sequence = stop_reason(self.finish, self.choice, self.req.body.get("stop"))
        # Totals, not increments: the SDKs overwrite message_start's usage with them.
        usage = anthropic_usage(Usage.from_openai(self.usage))
        delta = {"stop_reason": reason, "stop_sequence": sequence}
        out.append(
            event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
        )
        out.append(_STOP)
        return b"".join(out)


async def relay_anthropic_stream(
    ex: Exchange, ctx: RequestContext, chunks: ChunkStream, req: ChatRequest
) -> None:
    translator = EventTranslator(req)
    try:
        await ex.open_stream({**SSE_HEADERS, **anthropic_headers(ctx)})
        started = False
        async for chunk in chunks:
            data = chunk.data
            out = b""
            if not started:
                started = True
                out = translator.start(data.get("usage"))
            out += translator.chunk(data)
            if out:
                await ex.send(out)
        if not started:
            await ex.send(translator.start(None))
        await ex.send(translator.end())
    except GatewayError as exc:
        # Headers are gone already: the failure travels as an error event the SDKs raise on.
        ctx.outcome = exc.kind
        with suppress(ConnectionError):
            await ex.send(event("error", anthropic_error_body(exc, ctx.request_id)))
    except ConnectionError:
        ctx.outcome = "client_disconnected"
    finally:
        await chunks.aclose()
    with suppress(ConnectionError):
        await ex.close_stream()

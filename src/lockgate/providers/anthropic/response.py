"""Anthropic Message -> OpenAI chat.completion: content, tool calls, stop reason, usage."""

from __future__ import annotations

import time
from typing import Any

import orjson

from lockgate.core.errors import ContentFiltered
from lockgate.core.types import JSON

# Anthropic stop_reason -> OpenAI finish_reason. `pause_turn` (a server tool paused a long
# turn) is a complete answer as far as an OpenAI client can tell.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason(stop_reason: Any) -> str:
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def openai_usage(usage: Any) -> JSON:
    """OpenAI's usage from Anthropic's. Anthropic's `input_tokens` leaves out the tokens
    read from and written to the prompt cache; OpenAI's `prompt_tokens` counts them all."""
    usage = usage if isinstance(usage, dict) else {}
    fresh = _int(usage.get("input_tokens"))
    read = _int(usage.get("cache_read_input_tokens"))
    written = _int(usage.get("cache_creation_input_tokens"))
    output = _int(usage.get("output_tokens"))
    prompt = fresh + read + written
    return {
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "total_tokens": prompt + output,
        "prompt_tokens_details": {"cached_tokens": read, "cache_creation_tokens": written},
    }


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def refused(message: JSON) -> ContentFiltered:
    """The error for a refusal that produced no answer at all."""
    details = message.get("stop_details")
    explanation = details.get("explanation") if isinstance(details, dict) else None
    reason = f": {explanation}" if isinstance(explanation, str) and explanation else ""
    return ContentFiltered(f"Anthropic declined to answer this request (refusal){reason}")


def tool_call(block: JSON, index: int | None = None) -> JSON:
    call: JSON = {
        "id": block.get("id"),
        "type": "function",
        "function": {
            "name": block.get("name"),
            "arguments": orjson.dumps(block.get("input") or {}).decode(),
        },
    }
    if index is not None:
        call = {"index": index, **call}
    return call


def chat_completion(message: JSON, model: str) -> JSON:
    """The chat.completion for a (non-streamed) Message. A refusal with nothing said is
    raised as `ContentFiltered`, a 400 like OpenAI's content filter."""
    blocks = [b for b in message.get("content") or () if isinstance(b, dict)]
    texts = [
        b["text"] for b in blocks if b.get("type") == "text" and isinstance(b.get("text"), str)
    ]
    calls = [tool_call(b) for b in blocks if b.get("type") == "tool_use"]
    thinking = [
        b["thinking"]
        for b in blocks
        if b.get("type") == "thinking" and isinstance(b.get("thinking"), str)
    ]
    stop = message.get("stop_reason")
    if stop == "refusal" and not texts and not calls:
        raise refused(message)
    reply: JSON = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
        "annotations": [],
    }
    if calls:
        reply["tool_calls"] = calls
    if thinking:
        reply["reasoning_content"] = "".join(thinking)
    return {
        "id": _completion_id(message),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model") or model,
        "choices": [
            {"index": 0, "message": reply, "logprobs": None, "finish_reason": finish_reason(stop)}
        ],
        "usage": openai_usage(message.get("usage")),
    }


def _completion_id(message: JSON) -> str:
    given = message.get("id")
    return f"chatcmpl-{given}" if isinstance(given, str) and given else "chatcmpl-anthropic"

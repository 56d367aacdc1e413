"""Bedrock Converse answer -> OpenAI `chat.completion`; stop reasons and usage."""

from __future__ import annotations

from typing import Any

import orjson

from lockgate.core.types import JSON

# Converse stopReason -> OpenAI finish_reason. A guardrail or the model's own filter ending
# an answer is `content_filter` (Azure's convention too); unknown reasons end as "stop".
STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}


def finish_reason(stop_reason: Any) -> str:
    return STOP_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def usage(token_usage: Any) -> JSON:
    """OpenAI usage from Converse's: `inputTokens` excludes cache reads and writes, OpenAI's
    `prompt_tokens` includes both (reads as `cached_tokens`, writes as
    `cache_creation_tokens`)."""
    data = token_usage if isinstance(token_usage, dict) else {}
    read = _count(data.get("cacheReadInputTokens"))
    write = _count(data.get("cacheWriteInputTokens"))
    prompt = _count(data.get("inputTokens")) + read + write
    completion = _count(data.get("outputTokens"))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": read, "cache_creation_tokens": write},
    }


def tool_call(block: JSON) -> JSON:
    return {
        "id": block.get("toolUseId"),
        "type": "function",
        "function": {
            "name": block.get("name"),
            "arguments": orjson.dumps(block.get("input", {})).decode(),
        },
    }


def chat_completion(data: JSON, model: str, completion_id: str, created: int) -> JSON:
    output = data.get("output")
    message = output.get("message") if isinstance(output, dict) else None
    blocks = message.get("content") if isinstance(message, dict) else None
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[JSON] = []
    for block in blocks if isinstance(blocks, list) else ():
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif isinstance(block.get("toolUse"), dict):
            calls.append(tool_call(block["toolUse"]))
        elif isinstance(block.get("reasoningContent"), dict):
            text = (block["reasoningContent"].get("reasoningText") or {}).get("text")
            if isinstance(text, str):
                reasoning.append(text)
    reply: JSON = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        reply["tool_calls"] = calls
    if reasoning:
        reply["reasoning_content"] = "".join(reasoning)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": reply,
                "logprobs": None,
                "finish_reason": finish_reason(data.get("stopReason")),
            }
        ],
        "usage": usage(data.get("usage")),
    }

"""Gemini `GenerateContentResponse` -> OpenAI `chat.completion`: candidates, finish reasons,
usage, and prompts Gemini blocked."""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

from lockgate.core.errors import ContentFiltered
from lockgate.core.types import JSON
from lockgate.providers.gemini.toolids import new_call_id

# Gemini finishReason -> OpenAI finish_reason. STOP becomes "tool_calls" when the
# candidate called functions; an unlisted reason (OTHER, LANGUAGE, ...) is "stop".
FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}


def finish_reason(reason: Any, called_functions: bool) -> str:
    mapped = FINISH_REASONS.get(str(reason), "stop")
    return "tool_calls" if mapped == "stop" and called_functions else mapped


def usage(metadata: Any) -> JSON:
    """OpenAI usage from Gemini's usageMetadata. Gemini's candidatesTokenCount excludes
    thinking and its promptTokenCount excludes tool-use prompts (totalTokenCount is the sum
    of the four); OpenAI's completion_tokens include reasoning tokens, so:
    prompt = promptTokenCount + toolUsePromptTokenCount (cached tokens are a subset of
    promptTokenCount, as OpenAI's cached_tokens are of prompt_tokens) and
    completion = candidatesTokenCount + thoughtsTokenCount."""
    meta = metadata if isinstance(metadata, dict) else {}
    prompt = _count(meta, "promptTokenCount") + _count(meta, "toolUsePromptTokenCount")
    thoughts = _count(meta, "thoughtsTokenCount")
    completion = _count(meta, "candidatesTokenCount") + thoughts
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": _count(meta, "cachedContentTokenCount")},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


def _count(meta: JSON, key: str) -> int:
    value = meta.get(key)
    return value if isinstance(value, int) and value > 0 else 0


def raise_if_blocked(data: JSON) -> None:
    """A prompt Gemini refused comes back as 200 with a blockReason and no candidates."""
    feedback = data.get("promptFeedback")
    reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
    if reason and not data.get("candidates"):
        message = feedback.get("blockReasonMessage") if isinstance(feedback, dict) else None
        raise ContentFiltered(
            f"Gemini blocked the prompt ({reason})" + (f": {message}" if message else ""),
            param="messages",
        )


def split_parts(parts: Any) -> tuple[str | None, list[JSON]]:
    """(the text of the answer, its tool calls); thought summaries are not answer text."""
    texts: list[str] = []
    calls: list[JSON] = []
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, dict) or part.get("thought") is True:
            continue
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        call = part.get("functionCall")
        if isinstance(call, dict):
            signature = part.get("thoughtSignature")
            calls.append(
                {
                    "id": new_call_id(signature if isinstance(signature, str) else None),
                    "type": "function",
                    "function": {
                        "name": str(call.get("name", "")),
                        "arguments": orjson.dumps(call.get("args") or {}).decode(),
                    },
                }
            )
    return ("".join(texts) if texts else None), calls


def completion_id(data: JSON) -> str:
    response_id = data.get("responseId")
    return f"chatcmpl-{response_id if isinstance(response_id, str) else secrets.token_hex(12)}"


def completion(data: JSON, model: str) -> JSON:
    """The OpenAI chat.completion for a whole Gemini answer."""
    raise_if_blocked(data)
    choices: list[JSON] = []
    for position, candidate in enumerate(data.get("candidates") or ()):
        if not isinstance(candidate, dict):
            continue
        content = candidate.get("content")
        text, calls = split_parts(content.get("parts") if isinstance(content, dict) else None)
        message: JSON = {"role": "assistant", "content": text, "refusal": None}
        if calls:
            message["tool_calls"] = calls
        index = candidate.get("index")
        choices.append(
            {
                "index": index if isinstance(index, int) else position,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(candidate.get("finishReason"), bool(calls)),
            }
        )
    version = data.get("modelVersion")
    return {
        "id": completion_id(data),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": version if isinstance(version, str) else model,
        "choices": choices,
        "usage": usage(data.get("usageMetadata")),
    }

"""Cached answers: which are worth storing, a stream assembled into one completion, and a
completion replayed as the chunks a streaming client expects.

An entry holds the answer as a `chat.completion` body, whatever way it arrived, so a
streamed answer serves a non-streaming request and the other way round.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lockgate.config.schema import CacheStoreConfig
from lockgate.core.types import JSON

REPLAY_PIECE = 64  # characters of content per replayed chunk


def storable(body: JSON, allow: CacheStoreConfig) -> bool:
    """An answer is stored only when complete and final, unless configured otherwise:
    truncated answers, refusals and tool calls in progress are not."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    for choice in choices:
        if not isinstance(choice, dict):
            return False
        finish = choice.get("finish_reason")
        message = choice.get("message") or {}
        if finish is None:
            return False
        if finish == "length" and not allow.truncated:
            return False
        refused = finish == "content_filter" or bool(message.get("refusal"))
        if refused and not allow.refusals:
            return False
        if (finish == "tool_calls" or message.get("tool_calls")) and not allow.tool_calls:
            return False
    return True


def assemble(chunks: Iterable[JSON]) -> JSON | None:
    """One `chat.completion` body from a stream's chunks; None when a choice never finished."""
    head: JSON | None = None
    usage: Any = None
    choices: dict[int, JSON] = {}
    for chunk in chunks:
        if head is None and chunk.get("choices"):
            head = chunk
        if chunk.get("usage"):
            usage = chunk["usage"]
        for part in chunk.get("choices") or ():
            _absorb(choices.setdefault(part.get("index", 0), _empty(part)), part)
    if head is None or any(c["finish_reason"] is None for c in choices.values()):
        return None
    body: JSON = {
        "id": head.get("id"),
        "object": "chat.completion",
        "created": head.get("created"),
        "model": head.get("model"),
        "choices": [choices[i] for i in sorted(choices)],
    }
    if head.get("system_fingerprint") is not None:
        body["system_fingerprint"] = head["system_fingerprint"]
    if usage is not None:
        body["usage"] = usage
    return body


def _empty(part: JSON) -> JSON:
    message: JSON = {"role": "assistant", "content": None, "refusal": None}
    return {"index": part.get("index", 0), "message": message, "logprobs": None,
            "finish_reason": None}  # fmt: skip


def _absorb(choice: JSON, part: JSON) -> None:
    message = choice["message"]
    delta = part.get("delta") or {}
    if delta.get("role"):
        message["role"] = delta["role"]
    for field in ("content", "refusal"):
        if isinstance(delta.get(field), str):
            message[field] = (message[field] or "") + delta[field]
    for call in delta.get("tool_calls") or ():
        calls: list[JSON] = message.setdefault("tool_calls", [])
        index = call.get("index", len(calls))
        while len(calls) <= index:
            calls.append(
                {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
            )
        target = calls[index]
        if call.get("id"):
            target["id"] = call["id"]
        if call.get("type"):
            target["type"] = call["type"]
        function = call.get("function") or {}
        target["function"]["name"] += function.get("name") or ""
        target["function"]["arguments"] += function.get("arguments") or ""
    logprobs = part.get("logprobs")
    if isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
        if choice["logprobs"] is None:
            choice["logprobs"] = {"content": []}
        choice["logprobs"]["content"].extend(logprobs["content"])
    if part.get("finish_reason") is not None:
        choice["finish_reason"] = part["finish_reason"]


def replay(body: JSON) -> list[JSON]:
    """The chunks a stream of ``body`` would have had: a role chunk, the content in pieces,
    the tool calls, the finish reason per choice, then a usage-only chunk."""
    head = {
        "id": body.get("id"),
        "object": "chat.completion.chunk",
        "created": body.get("created"),
        "model": body.get("model"),
        "system_fingerprint": body.get("system_fingerprint"),
    }

    def chunk(index: int, delta: JSON, finish: str | None = None) -> JSON:
        part = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**head, "choices": [part]}

    out: list[JSON] = []
    for choice in body.get("choices") or ():
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        content = message.get("content")
        out.append(chunk(index, {"role": message.get("role", "assistant"), "content": ""}))
        if isinstance(content, str):
            for start in range(0, len(content), REPLAY_PIECE):
                out.append(chunk(index, {"content": content[start : start + REPLAY_PIECE]}))
        if message.get("refusal"):
            out.append(chunk(index, {"refusal": message["refusal"]}))
        for i, call in enumerate(message.get("tool_calls") or ()):
            out.append(chunk(index, {"tool_calls": [{"index": i, **call}]}))
        out.append(chunk(index, {}, choice.get("finish_reason") or "stop"))
    if body.get("usage") is not None:
        out.append({**head, "choices": [], "usage": body["usage"]})
    return out

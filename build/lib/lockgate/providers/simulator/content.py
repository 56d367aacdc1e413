"""Deterministic simulated content: token estimates, reply words, JSON placeholders, logprobs."""

from __future__ import annotations

import zlib
from functools import lru_cache
from typing import Any

import orjson

_WORDS = """
    the gateway routes each request to a healthy upstream and answers quickly while
    budgets stay exact so every token is counted once retries wait politely for rate
    limits to recover streams arrive chunk by chunk and tools return structured results
    models reply with plain words for testing latency throughput errors outages and
    recovery under realistic load
"""
VOCAB: tuple[str, ...] = tuple(_WORDS.split())

_IMAGE_TOKENS = 85
_PER_MESSAGE = 3
_REPLY_PRIMING = 3


def text_of(content: Any) -> str:
    """The text in a message's ``content``: a string, or the text parts of a parts list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def estimate_tokens(text: str) -> int:
    """About four characters a token, rounded up."""
    return (len(text) + 3) // 4


def _message_tokens(message: dict[str, Any]) -> int:
    content = message.get("content")
    tokens = _PER_MESSAGE + estimate_tokens(text_of(content))
    if isinstance(content, list):
        tokens += _IMAGE_TOKENS * sum(
            1 for part in content if isinstance(part, dict) and part.get("type") == "image_url"
        )
    name = message.get("name")
    if isinstance(name, str):
        tokens += 1 + estimate_tokens(name)
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                tokens += 3 + estimate_tokens(str(function.get("name", "")))
                tokens += estimate_tokens(str(function.get("arguments", "")))
    return tokens


def prompt_tokens(messages: list[dict[str, Any]], tools: list[Any] | None) -> int:
    """A cheap deterministic prompt size: chars/4 per message plus 3 per message and 3 more."""
    total = _REPLY_PRIMING + sum(_message_tokens(m) for m in messages)
    if tools:
        total += estimate_tokens(orjson.dumps(tools).decode())
    return total


def prompt_texts(messages: list[dict[str, Any]]) -> list[str]:
    return [text_of(m.get("content")) for m in messages]


def seed_of(text: str) -> int:
    """A stable small number derived from the prompt text (same text, same reply)."""
    return zlib.crc32(text.encode("utf-8", "surrogatepass"))


@lru_cache(maxsize=4096)
def reply_pieces(seed: int, count: int) -> tuple[str, ...]:
    """``count`` word tokens ("Simulated reply ..."), each but the first with a leading space."""
    words = ["Simulated", "reply"]
    size = len(VOCAB)
    words.extend(VOCAB[(seed + i) % size] for i in range(max(0, count - 2)))
    words = words[:count]
    words[-1] += "."
    return (words[0], *(" " + w for w in words[1:]))


def tool_result_pieces(result: str, count: int) -> tuple[str, ...]:
    """A reply of ``count`` words that quotes the tool result it answers."""
    words = ["Simulated", "answer", "from", "the", "tool", "result:", *result.split()]
    size = len(VOCAB)
    words.extend(VOCAB[i % size] for i in range(max(0, count - len(words))))
    words = words[:count]
    return (words[0], *(" " + w for w in words[1:]))


def json_reply_pieces(seed: int, count: int) -> tuple[str, ...]:
    """``{"reply":"..."}`` split into ``count`` pieces at word boundaries (valid JSON)."""
    words = list(reply_pieces(seed, count))
    words[0] = '{"reply":"' + words[0]
    words[-1] += '"}'
    return tuple(words)


def slices(text: str, size: int = 4) -> tuple[str, ...]:
    """Split a string in ``size``-character pieces (about one token each)."""
    if not text:
        return ("",)
    return tuple(text[i : i + size] for i in range(0, len(text), size))


_STRING_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00",
    "email": "user@example.com",
    "uri": "https://example.com",
    "url": "https://example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    node: Any = root
    for key in ref[2:].split("/"):
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}


def placeholder(
    schema: Any, *, root: Any = None, required_only: bool = False, depth: int = 0
) -> Any:
    """A value that satisfies a (simple) JSON schema: enums, consts, types, nested objects."""
    if not isinstance(schema, dict) or depth > 8:
        return None
    root = schema if root is None else root
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return placeholder(options[0], root=root, required_only=required_only, depth=depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "object":
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            return {}
        names = list(properties)
        if required_only:
            required = schema.get("required")
            names = [n for n in required if n in properties] if isinstance(required, list) else []
        return {
            name: placeholder(
                properties[name], root=root, required_only=required_only, depth=depth + 1
            )
            for name in names
        }
    if kind == "array":
        item = placeholder(
            schema.get("items", {}), root=root, required_only=required_only, depth=depth + 1
        )
        count = max(1, int(schema.get("minItems", 1)))
        if isinstance(schema.get("maxItems"), int):
            count = min(count, schema["maxItems"])
        return [item] * count
    if kind in ("integer", "number"):
        value = schema.get("minimum", schema.get("exclusiveMinimum", 1))
        if not isinstance(value, int | float):
            value = 1
        if "exclusiveMinimum" in schema and "minimum" not in schema:
            value += 1
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    text = _STRING_FORMATS.get(str(schema.get("format", "")), "simulated")
    min_length = schema.get("minLength")
    if isinstance(min_length, int) and len(text) < min_length:
        text = text.ljust(min_length, "x")
    return text


def logprob_entries(pieces: tuple[str, ...], top: int) -> list[dict[str, Any]]:
    """``logprobs.content`` entries for each token, with ``top`` alternatives each."""
    entries: list[dict[str, Any]] = []
    size = len(VOCAB)
    for i, piece in enumerate(pieces):
        logprob = -0.01 * (1 + i % 7)
        alternatives = [{"token": piece, "logprob": logprob, "bytes": list(piece.encode())}]
        for k in range(1, top):
            alt = " " + VOCAB[(i * 3 + k) % size]
            alternatives.append(
                {"token": alt, "logprob": logprob - 1.5 * k, "bytes": list(alt.encode())}
            )
        entries.append(
            {
                "token": piece,
                "logprob": logprob,
                "bytes": list(piece.encode()),
                "top_logprobs": alternatives[:top],
            }
        )
    return entries

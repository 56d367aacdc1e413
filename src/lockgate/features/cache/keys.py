"""Cache keys: the tenant scope plus a hash of everything in a request that changes the answer.

Delivery fields (`stream`, `stream_options`), bookkeeping (`user`, `metadata`, `store`) and
the gateway's own fields never change the answer, so a streamed and a non-streamed request
share one entry. Text-only content given as parts hashes like the same text as a string.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import orjson

from lockgate.core.types import JSON, Principal

_IGNORED = frozenset({"stream", "stream_options", "user", "metadata", "store", "fallbacks"})
SHARED_SCOPE = "shared"


@dataclass(frozen=True, slots=True)
class CacheKey:
    """Where an entry lives: its namespace and model group (for purges) and its digest."""

    namespace: str
    group: str
    digest: str

    def storage_id(self) -> str:
        """A flat id of fixed-width hex parts, safe as a Redis key or a glob pattern."""
        return f"{short_hash(self.namespace)}:{short_hash(self.group)}:{self.digest}"


def short_hash(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def scope_of(principal: Principal | None, shared: bool) -> str:
    """Whose answers a request may see: its team's, else its key's, unless configured shared."""
    if shared:
        return SHARED_SCOPE
    if principal is None:
        return "anonymous"
    if principal.team_id:
        return f"team:{principal.team_id}"
    return f"key:{principal.key_id}"


def request_digest(scope: str, namespace: str, model: str, body: JSON) -> str:
    material = {k: _normalise(k, v) for k, v in body.items() if k not in _IGNORED}
    return _digest([scope, namespace, model, material])


def bucket_digest(
    scope: str, namespace: str, model: str, body: JSON, prefix: list[Any], question: str
) -> str:
    """The semantic cache's neighbourhood: everything but the last user message must match
    (parameters, system prompt, earlier turns), so only the question itself may differ,
    and only in wording: its numbers and negations must be the same too."""
    material = {k: v for k, v in body.items() if k not in _IGNORED and k != "messages"}
    history = [_message(m) for m in prefix]
    return _digest([scope, namespace, model, material, history, literals(question)])


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_WORD = re.compile(r"[a-z']+")
_NEGATIONS = frozenset({"no", "not", "never", "none", "nor", "without", "cannot"})


def literals(text: str) -> list[Any]:
    """What embeddings notoriously blur (all-MiniLM-L6-v2 puts "17 times 23" and
    "17 times 24" at 0.91, "with alcohol" and "without alcohol" at 0.96): the numbers
    and the negations of a question, which must match exactly for a semantic hit."""
    lowered = text.lower()
    words = _WORD.findall(lowered)
    negations = sorted(
        {w for w in words if w in _NEGATIONS} | ({"n't"} if "n't" in lowered else set())
    )
    return [sorted(_NUMBER.findall(lowered)), negations]


def _digest(material: Any) -> str:
    raw = orjson.dumps(material, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def _normalise(name: str, value: Any) -> Any:
    if name == "messages" and isinstance(value, list):
        return [_message(m) for m in value]
    return value


def _message(message: Any) -> Any:
    if not isinstance(message, dict):
        return message
    content = message.get("content")
    text = text_of(content)
    if isinstance(content, list) and text is not None:
        return {**message, "content": text}
    return message


def text_of(content: Any) -> str | None:
    """A message's content as one string when it is text only; None otherwise."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        for p in content
    ):
        return "".join(p["text"] for p in content)
    return None

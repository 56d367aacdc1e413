"""Request bodies for the load: synthetic prompts of a given size, or a JSONL file."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

# Common English words of about four characters: roughly one token each for most tokenizers.
_VOCABULARY = (
    "time year people way day man thing woman life child world school state family student "
    "group country problem hand part place case week company system program question work "
    "number night point home water room mother area money story fact month lot right study "
    "book eye job word business issue side kind head house service friend father power hour "
    "game line end member law car city name team minute idea kid body back parent face level"
)
_WORDS = tuple(_VOCABULARY.split())


def synthetic_text(tokens: int, rng: random.Random) -> str:
    """About ``tokens`` tokens of prose-like text (four characters a token)."""
    words: list[str] = []
    chars = 0
    while chars < tokens * 4:
        word = rng.choice(_WORDS)
        words.append(word)
        chars += len(word) + 1
    return " ".join(words)


def load_prompts(path: str) -> list[dict[str, Any]]:
    """Bodies from a JSONL file: each line a chat request body (``messages`` at least) or a
    bare ``{"prompt": "..."}``. ``model`` and ``stream`` are set by the profiler."""
    bodies: list[dict[str, Any]] = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not JSON: {exc}") from exc
        if isinstance(item, dict) and isinstance(item.get("prompt"), str):
            item = {"messages": [{"role": "user", "content": item.pop("prompt")}], **item}
        if not isinstance(item, dict) or not isinstance(item.get("messages"), list):
            raise ValueError(f"{path}:{number}: needs `messages` (a list) or `prompt`")
        bodies.append(item)
    if not bodies:
        raise ValueError(f"{path}: no prompts")
    return bodies


class PromptSource:
    """Endless request bodies. Each synthetic prompt starts with a unique tag so no cache
    or request coalescing answers it in place of the upstream."""

    def __init__(
        self,
        model: str,
        *,
        prompt_tokens: int,
        max_tokens: int,
        stream: bool,
        bodies: list[dict[str, Any]] | None = None,
        seed: int | None = None,
    ) -> None:
        self._model = model
        self._max_tokens = max_tokens
        self._stream = stream
        self._rng = random.Random(seed)
        self._bodies = itertools.cycle(bodies) if bodies else None
        self._prompt_tokens = prompt_tokens
        self._counter = itertools.count()

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._bodies is not None:
            body = dict(next(self._bodies))
        else:
            tag = f"[bench {next(self._counter)}] "
            text = tag + synthetic_text(max(1, self._prompt_tokens - 8), self._rng)
            body = {
                "messages": [{"role": "user", "content": text}],
                "max_tokens": self._max_tokens,
            }
        body["model"] = self._model
        if self._stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        else:
            body.pop("stream", None)
            body.pop("stream_options", None)
        return orjson.dumps(body)

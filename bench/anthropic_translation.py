"""What the Anthropic edge adds per request: CPU of translating a request and its answer.

    .venv/bin/python bench/anthropic_translation.py

Prints microseconds per non-streaming request (Messages body -> chat body, chat
completion -> Message) and per 16-chunk stream (chunks -> Anthropic events), to compare
with the gateway's CPU per request in RESULTS.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson

from lockgate.api.anthropic_stream import EventTranslator
from lockgate.api.anthropic_wire import to_chat_request, to_message
from lockgate.core.types import Usage

REQUEST = orjson.dumps(
    {
        "model": "gpt-4o-mini",
        "max_tokens": 256,
        "system": "You are a helpful assistant.",
        "messages": [
            {"role": "user", "content": "Summarise: the cat sat on the mat, twice."},
            {"role": "assistant", "content": [{"type": "text", "text": "A cat sat twice."}]},
            {"role": "user", "content": [{"type": "text", "text": "Shorter, please."}]},
        ],
        "temperature": 0.2,
    }
)
ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Cat sat."},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 40, "completion_tokens": 3, "total_tokens": 43},
}
CHUNKS = [
    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
    *({"choices": [{"index": 0, "delta": {"content": f" word{i}"}}]} for i in range(16)),
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    {"choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 16}},
]


def per_call(fn: Callable[[], object], seconds: float = 1.0) -> float:
    """Microseconds per call, best of three runs."""
    best = float("inf")
    for _ in range(3):
        count, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            for _ in range(100):
                fn()
            count += 100
        best = min(best, elapsed / count * 1e6)
    return best


def non_streaming() -> bytes:
    req = to_chat_request(orjson.loads(REQUEST))
    return orjson.dumps(to_message(ANSWER, Usage.from_openai(ANSWER["usage"]), req))


def streaming() -> bytes:
    req = to_chat_request({**orjson.loads(REQUEST), "stream": True})
    translator = EventTranslator(req)
    out = translator.start(None)
    for chunk in CHUNKS:
        out += translator.chunk(chunk)
    return out + translator.end()


def main() -> None:
    print(f"non-streaming request + answer: {per_call(non_streaming):6.1f} us")
    print(f"16-chunk stream:                {per_call(streaming):6.1f} us")


if __name__ == "__main__":
    main()

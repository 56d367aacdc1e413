"""The Anthropic adapter's stream and error translation, on Anthropic's documented event
streams, error bodies and rate-limit headers (tests/providers/wire_examples/anthropic/)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from openai.types.chat import ChatCompletionChunk

from lockgate.core import errors
from lockgate.core.types import Chunk, Usage
from lockgate.providers.anthropic.errors import (
    anthropic_limits,
    anthropic_retry_after,
    error_from_response,
)
from lockgate.providers.anthropic.stream import openai_chunks, sse_events

EXAMPLES = Path(__file__).parent / "wire_examples" / "anthropic"
MODEL = "claude-sonnet-4-5"
# Read at import: the async tests must not block their event loop on file reads.
BASIC_SSE = (EXAMPLES / "stream_basic.sse").read_bytes()
TOOL_SSE = (EXAMPLES / "stream_tool_use.sse").read_bytes()
ERROR_SSE = (EXAMPLES / "stream_error.sse").read_bytes()


def example(name: str) -> Any:
    return orjson.loads((EXAMPLES / name).read_bytes())


# -- streams -------------------------------------------------------------------------------


async def _pieces(raw: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(raw), size):
        yield raw[start : start + size]


async def stream(raw: bytes, size: int = 4096) -> list[Chunk]:
    events = sse_events(_pieces(raw, size))
    return [chunk async for chunk in openai_chunks(events, MODEL, secrets=[])]


@pytest.mark.parametrize("size", [7, 4096])
async def test_basic_stream(size: int) -> None:
    chunks = await stream(BASIC_SSE, size)
    parsed = [ChatCompletionChunk.model_validate(c.data) for c in chunks]
    assert parsed[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in parsed if c.choices) == "Hello!"
    assert [c.choices[0].finish_reason for c in parsed if c.choices][-1] == "stop"
    assert chunks[-1].is_usage_only
    usage = chunks[-1].data["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (25, 15)
    assert {c.id for c in parsed} == {"chatcmpl-msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY"}


async def test_tool_use_stream() -> None:
    chunks = await stream(TOOL_SSE)
    parsed = [ChatCompletionChunk.model_validate(c.data) for c in chunks]
    text = "".join(c.choices[0].delta.content or "" for c in parsed if c.choices)
    assert text == "Okay, let's check the weather for San Francisco, CA:"
    calls = [t for c in parsed if c.choices for t in c.choices[0].delta.tool_calls or ()]
    assert calls[0].index == 0 and calls[0].id == "toolu_01T1x1fJ34qAmk2tNTrN7Up6"
    assert calls[0].function is not None and calls[0].function.name == "get_weather"
    arguments = "".join(t.function.arguments or "" for t in calls if t.function)
    assert orjson.loads(arguments) == {"location": "San Francisco, CA", "unit": "fahrenheit"}
    assert [c.choices[0].finish_reason for c in parsed if c.choices][-1] == "tool_calls"
    usage = chunks[-1].data["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (472, 89)


async def test_overloaded_error_event_is_retryable() -> None:
    raw = BASIC_SSE.split(b"event: content_block_delta")[0]
    raw += ERROR_SSE
    with pytest.raises(errors.Overloaded) as caught:
        await stream(raw)
    assert caught.value.retryable and caught.value.message == "upstream overloaded: Overloaded"


async def test_a_stream_cut_short_is_an_upstream_error() -> None:
    raw = BASIC_SSE.split(b"event: content_block_stop")[0]
    with pytest.raises(errors.UpstreamError, match="ended before it was complete"):
        await stream(raw)


def _events(*events: dict[str, Any]) -> bytes:
    return b"".join(
        b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events
    )


START = {"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 9}}}
STOP = {"type": "message_stop"}


async def test_a_streamed_refusal_before_any_content_is_a_content_filter_error() -> None:
    refusal = {"type": "message_delta", "delta": {"stop_reason": "refusal"}, "usage": {}}
    with pytest.raises(errors.ContentFiltered):
        await stream(_events(START, {"type": "ping"}, refusal, STOP))


async def test_a_refusal_after_some_text_finishes_with_content_filter() -> None:
    chunks = await stream(
        _events(
            START,
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Sure"},
            },
            {
                "type": "message_delta",
                "delta": {"stop_reason": "refusal"},
                "usage": {"output_tokens": 1},
            },
            STOP,
        )
    )
    assert [c.data["choices"][0]["finish_reason"] for c in chunks if c.data["choices"]][-1] == (
        "content_filter"
    )


async def test_stream_usage_counts_cache_tokens() -> None:
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_2",
            "usage": {
                "input_tokens": 25,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 1200,
                "output_tokens": 1,
            },
        },
    }
    end = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn"},
        "usage": {"output_tokens": 7},
    }
    usage = Usage.from_openai((await stream(_events(start, end, STOP)))[-1].data["usage"])
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens) == (1225, 1200, 7)


# -- errors and rate-limit headers ---------------------------------------------------------


def _error(status: int, kind: str, message: str) -> errors.GatewayError:
    body = orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})
    return error_from_response(status, body, {}, secrets=[])


@pytest.mark.parametrize(
    ("status", "kind", "message", "expected", "retryable"),
    [
        (400, "invalid_request_error", "prompt is too long: 208310 tokens > 200000 maximum",
         errors.ContextWindowExceeded, False),
        (400, "invalid_request_error", "input length and `max_tokens` exceed context limit: "
         "188240 + 21333 > 200000, decrease input length or `max_tokens` and try again",
         errors.ContextWindowExceeded, False),
        (400, "invalid_request_error", "max_tokens: Field required", errors.BadRequest, False),
        (401, "authentication_error", "invalid x-api-key", errors.ProviderAuthError, False),
        (403, "permission_error", "no access", errors.ProviderAuthError, False),
        (404, "not_found_error", "model: claude-nope", errors.UpstreamError, True),
        (413, "request_too_large", "too big", errors.PayloadTooLarge, False),
        (429, "rate_limit_error", "slow down", errors.RateLimited, True),
        (500, "api_error", "Internal server error", errors.UpstreamError, True),
        (529, "overloaded_error", "Overloaded", errors.Overloaded, True),
    ],
)  # fmt: skip
def test_error_types(
    status: int, kind: str, message: str, expected: type[errors.GatewayError], retryable: bool
) -> None:
    err = _error(status, kind, message)
    assert type(err) is expected
    assert err.retryable is retryable


def test_documented_error_shape() -> None:
    err = error_from_response(404, (EXAMPLES / "error_not_found.json").read_bytes(), {}, secrets=[])
    assert err.status == 502
    assert "The requested resource could not be found." in err.message


def test_rate_limit_headers() -> None:
    doc = example("rate_limit_headers.json")
    limits = anthropic_limits(doc["headers"])
    assert limits is not None
    assert (limits.limit_requests, limits.remaining_requests) == (50, 0)
    assert (limits.limit_tokens, limits.remaining_tokens) == (80000, 64000)
    err = error_from_response(429, orjson.dumps(doc["body"]), doc["headers"], secrets=[])
    assert isinstance(err, errors.RateLimited) and err.retry_after == 12.0


def test_without_retry_after_the_exhausted_bucket_reset_is_the_wait() -> None:
    headers = {
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "2999-01-01T00:00:00Z",
        "anthropic-ratelimit-tokens-remaining": "10",
        "anthropic-ratelimit-tokens-reset": "2000-01-01T00:00:00Z",
    }
    wait = anthropic_retry_after(headers)
    assert wait is not None and wait > 10**9


def test_secrets_are_redacted_from_error_messages() -> None:
    body = orjson.dumps(
        {"type": "error", "error": {"type": "authentication_error", "message": "bad key k-123456"}}
    )
    err = error_from_response(401, body, {}, secrets=["k-123456"])
    assert "k-123456" not in err.message

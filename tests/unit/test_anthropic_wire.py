"""Anthropic Messages <-> OpenAI chat translation: requests, messages, stream events."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from lockgate.api.anthropic_errors import anthropic_error_type, anthropic_status
from lockgate.api.anthropic_stream import EventTranslator
from lockgate.api.anthropic_wire import anthropic_usage, to_chat_request, to_message
from lockgate.core import errors
from lockgate.core.types import Usage


def _req(**body: Any) -> dict[str, Any]:
    base = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    return to_chat_request({**base, **body}).body


def test_tool_results_become_tool_messages_in_order() -> None:
    body = _req(
        messages=[
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "text", "text": "Calling."},
                    {"type": "tool_use", "id": "t1", "name": "a", "input": {"x": 1}},
                    {"type": "tool_use", "id": "t2", "name": "b", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "one"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "t2",
                        "is_error": True,
                        "content": [
                            {"type": "text", "text": "two"},
                            {
                                "type": "image",
                                "source": {"type": "url", "url": "https://x.test/i.png"},
                            },
                        ],
                    },
                    {"type": "text", "text": "now?"},
                ],
            },
        ]
    )
    assert body["messages"] == [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": "Calling.",
            "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "a", "arguments": '{"x":1}'}},
                {"id": "t2", "type": "function", "function": {"name": "b", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "one"},
        {"role": "tool", "tool_call_id": "t2", "content": "two"},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "https://x.test/i.png"}}],
        },
        {"role": "user", "content": "now?"},
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}}),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: Any) -> None:
    body = _req(tools=[{"name": "f", "input_schema": {"type": "object"}}], tool_choice=choice)
    assert body["tool_choice"] == expected
    assert body["tools"] == [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    ]


def test_parallel_tool_use_can_be_disabled() -> None:
    body = _req(
        tools=[{"name": "f", "input_schema": {"type": "object"}}],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
    )
    assert body["parallel_tool_calls"] is False


def test_fields_dropped_translated_and_passed_through() -> None:
    req = to_chat_request(
        {
            "model": "m",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "hi"}],
            "thinking": {"type": "enabled", "budget_tokens": 2000},
            "service_tier": "auto",
            "metadata": {"user_id": "u1"},
            "output_config": {"effort": "high", "format": {"type": "json_schema", "schema": {}}},
            "top_k": 3,
            "fallbacks": ["other"],
            "stream": True,
        }
    )
    assert req.stream and req.include_usage
    assert req.fallbacks == ("other",)
    assert req.body == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 10,
        "stream": True,
        "user": "u1",
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": {}, "strict": True},
        },
        "top_k": 3,
    }


def test_pdf_and_text_documents() -> None:
    body = _req(
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {
                            "type": "base64",
                            "media_type": "application/pdf",
                            "data": "QQ==",
                        },
                    },
                    {"type": "document", "source": {"type": "text", "data": "plain"}},
                ],
            }
        ]
    )
    assert body["messages"][0]["content"] == [
        {
            "type": "file",
            "file": {"filename": "document.pdf", "file_data": "data:application/pdf;base64,QQ=="},
        },
        {"type": "text", "text": "plain"},
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"max_tokens": None}, "max_tokens: Field required"),
        ({"max_tokens": True}, "max_tokens: Input should be an integer >= 1"),
        ({"model": None}, "model: Field required"),
        ({"messages": []}, "messages: List should have at least 1 item"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role: Input should be"),
        ({"messages": [{"role": "user", "content": [{"text": "x"}]}]}, "messages.0.content.0.type"),
        ({"system": [{"type": "image"}]}, "system.0: Input should be a text block"),
        ({"tools": [{"type": "web_search_20250305", "name": "w"}]}, "tools.0: tool type"),
        ({"tool_choice": {"type": "tool"}}, "tool_choice: Input should be"),
        ({"stop_sequences": "END"}, "stop_sequences: Input should be a list of strings"),
    ],
)
def test_invalid_requests_name_the_field(body: dict[str, Any], message: str) -> None:
    base = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(errors.BadRequest) as info:
        to_chat_request({k: v for k, v in {**base, **body}.items() if v is not None})
    assert info.value.message.startswith(message)


def test_empty_content_is_an_empty_message() -> None:
    body = _req(messages=[{"role": "user", "content": []}])
    assert body["messages"] == [{"role": "user", "content": ""}]


def test_count_tokens_does_not_need_max_tokens() -> None:
    req = to_chat_request(
        {"model": "m", "messages": [{"role": "user", "content": "x"}]}, require_max_tokens=False
    )
    assert "max_tokens" not in req.body


def test_usage_separates_cache_reads_and_writes() -> None:
    usage = Usage(
        prompt_tokens=100, completion_tokens=9, cached_tokens=30, cache_creation_tokens=50
    )
    assert anthropic_usage(usage) == {
        "input_tokens": 20,
        "output_tokens": 9,
        "cache_creation_input_tokens": 50,
        "cache_read_input_tokens": 30,
    }


@pytest.mark.parametrize(
    ("finish", "extra", "reason", "sequence"),
    [
        ("stop", {}, "end_turn", None),
        ("length", {}, "max_tokens", None),
        ("tool_calls", {}, "tool_use", None),
        ("content_filter", {}, "refusal", None),
        ("stop", {"stop_reason": "END"}, "stop_sequence", "END"),  # vLLM says which matched
        ("stop", {"stop_reason": 128009}, "end_turn", None),  # a stop token, not a sequence
    ],
)
def test_message_stop_reasons(
    finish: str, extra: dict[str, Any], reason: str, sequence: str | None
) -> None:
    req = to_chat_request(
        {
            "model": "alias",
            "max_tokens": 5,
            "stop_sequences": ["END"],
            "messages": [{"role": "user", "content": "x"}],
        }
    )
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": "hi"},
        "finish_reason": finish,
    }
    message = to_message({"choices": [{**choice, **extra}]}, Usage(), req)
    assert (message["stop_reason"], message["stop_sequence"]) == (reason, sequence)
    assert message["model"] == "alias"


def test_message_tool_use_input_is_parsed() -> None:
    req = to_chat_request(
        {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    )
    calls = [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": [1]}'}},
        {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "not json"}},
    ]
    message = to_message(
        {
            "choices": [
                {"message": {"content": None, "tool_calls": calls}, "finish_reason": "tool_calls"}
            ]
        },
        Usage(prompt_tokens=3, completion_tokens=2),
        req,
    )
    assert message["content"] == [
        {"type": "tool_use", "id": "c1", "name": "f", "input": {"a": [1]}},
        {"type": "tool_use", "id": "c2", "name": "g", "input": {"_raw_arguments": "not json"}},
    ]
    assert message["usage"]["input_tokens"] == 3 and message["usage"]["output_tokens"] == 2


def _events(raw: bytes) -> list[tuple[str, Any]]:
    out = []
    for frame in raw.decode().strip().split("\n\n"):
        name, data = frame.split("\n")
        out.append((name.removeprefix("event: "), orjson.loads(data.removeprefix("data: "))))
    return out


def test_stream_text_then_two_tool_calls() -> None:
    req = to_chat_request(
        {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    )
    t = EventTranslator(req)
    raw = t.start(None)
    for delta in (
        {"role": "assistant", "content": ""},
        {"content": "Let me look."},
        {"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"q":'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '"x"}'}}]},
        {"tool_calls": [{"index": 1, "id": "c2", "function": {"name": "g", "arguments": "{}"}}]},
    ):
        raw += t.chunk({"choices": [{"index": 0, "delta": delta}]})
    raw += t.chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    raw += t.chunk({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 4}})
    raw += t.end()
    events = _events(raw)
    assert [(name, data.get("index")) for name, data in events] == [
        ("message_start", None),
        ("content_block_start", 0),
        ("ping", None),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("content_block_start", 2),
        ("content_block_delta", 2),
        ("content_block_stop", 2),
        ("message_delta", None),
        ("message_stop", None),
    ]
    assert events[5][1]["content_block"] == {
        "type": "tool_use",
        "id": "c1",
        "name": "f",
        "input": {},
    }
    assert events[6][1]["delta"] == {"type": "input_json_delta", "partial_json": '{"q":'}
    assert events[12][1]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert events[12][1]["usage"] == {
        "input_tokens": 11,
        "output_tokens": 4,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def test_empty_stream_still_has_the_frame() -> None:
    req = to_chat_request(
        {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    )
    t = EventTranslator(req)
    names = [name for name, _ in _events(t.start(None) + t.end())]
    assert names == ["message_start", "ping", "message_delta", "message_stop"]


@pytest.mark.parametrize(
    ("exc", "kind", "status"),
    [
        (errors.BadRequest("x"), "invalid_request_error", 400),
        (errors.ContextWindowExceeded("x"), "invalid_request_error", 400),
        (errors.AuthError("x"), "authentication_error", 401),
        (errors.PermissionDenied("x"), "permission_error", 403),
        (errors.NotFound("x"), "not_found_error", 404),
        (errors.PayloadTooLarge("x"), "request_too_large", 413),
        (errors.RateLimited("x"), "rate_limit_error", 429),
        (errors.Overloaded("x"), "overloaded_error", 529),
        (errors.CoolingDown("x"), "overloaded_error", 529),
        (errors.UpstreamError("x"), "api_error", 502),
        (errors.Timeout("x"), "timeout_error", 504),
        (errors.GatewayError("x"), "api_error", 500),
    ],
)
def test_error_types(exc: errors.GatewayError, kind: str, status: int) -> None:
    assert anthropic_error_type(exc) == kind
    assert anthropic_status(exc) == status

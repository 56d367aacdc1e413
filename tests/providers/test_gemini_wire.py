"""Gemini translation checked against documented and recorded wire examples, both ways:
lockgate's requests against Google's, Google's answers into what the openai SDK parses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from lockgate.core import errors
from lockgate.core.types import Chunk
from lockgate.providers.gemini import embeddings, request, response, stream
from lockgate.providers.gemini.errors import error_from_body
from lockgate.providers.gemini.toolids import split_call_id
from lockgate.providers.simulator.gemini_requests import chat_body, check_schema, embed_inputs

EXAMPLES = Path(__file__).parent / "wire_examples" / "gemini"
# Read at import: async tests must not block the event loop on files.
FILES = {p.relative_to(EXAMPLES).as_posix(): p.read_bytes() for p in EXAMPLES.rglob("*.*")}
PIXEL = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5E"
    "rkJggg=="
)


def example(name: str) -> Any:
    return orjson.loads(FILES[name])


async def _lines(raw: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(raw), size):  # arbitrary network cuts, mid-line included
        yield raw[start : start + size]


async def streamed(name: str, size: int = 37) -> list[Chunk]:
    events = stream.sse_events(_lines(FILES[name], size))
    return [chunk async for chunk in stream.translate(events, "gemini-x", [])]


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def _openai_tools(declarations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": d} for d in declarations]


# -- text ------------------------------------------------------------------------------


def test_text_request_is_the_documented_one() -> None:
    documented = example("generate_text.json")["request"]
    ours = request.chat_request({"messages": [_user("What is the capital of France?")]})
    assert ours == documented


def test_text_answer_becomes_a_chat_completion() -> None:
    body = response.completion(example("generate_text.json")["response"], "gemini-2.0-flash")
    parsed = ChatCompletion.model_validate(body)
    assert parsed.id == "chatcmpl-ictQaKDzD_6ShMIPm7P8iAY"
    assert parsed.model == "gemini-2.0-flash"
    assert parsed.choices[0].index == 0  # Gemini leaves a zero index out
    assert parsed.choices[0].message.content == "The capital of France is **Paris**.\n"
    assert parsed.choices[0].finish_reason == "stop"
    assert parsed.usage is not None
    assert (parsed.usage.prompt_tokens, parsed.usage.completion_tokens) == (7, 9)
    assert parsed.usage.total_tokens == 16


async def test_text_stream_becomes_chunks() -> None:
    chunks = await streamed("stream_text.sse")
    parsed = [ChatCompletionChunk.model_validate(c.data) for c in chunks]
    assert {p.id for p in parsed} == {"chatcmpl-ictQaOn0MeeDmNAP8OOwqA0"}
    assert parsed[0].choices[0].delta.role == "assistant"
    text = "".join(c.delta.content or "" for p in parsed for c in p.choices)
    assert text == "The capital of France is Paris.\n"
    finishes = [c.finish_reason for p in parsed for c in p.choices if c.finish_reason]
    assert finishes == ["stop"]
    # The finish reason closes the content; the usage chunk (the last event's) comes last.
    assert (
        parsed[-2].choices[0].finish_reason == "stop"
        and parsed[-2].choices[0].delta.content is None
    )
    assert parsed[-1].choices == [] and parsed[-1].usage is not None
    assert parsed[-1].usage.prompt_tokens == 7 and parsed[-1].usage.completion_tokens == 8
    assert parsed[-1].usage.total_tokens == 15


async def test_thinking_stream_leaves_thoughts_out_and_counts_them() -> None:
    chunks = await streamed("stream_thinking.sse", size=101)
    parsed = [ChatCompletionChunk.model_validate(c.data) for c in chunks]
    text = "".join(c.delta.content or "" for p in parsed for c in p.choices)
    assert text.startswith("To find the sum of the first 50 prime numbers")
    assert "Calculating Prime Sum" not in text
    usage = parsed[-1].usage
    assert usage is not None
    # totalTokenCount 1845 = 28 prompt + 643 candidates + 1174 thoughts; OpenAI's
    # completion_tokens include reasoning.
    assert usage.prompt_tokens == 28
    assert usage.completion_tokens == 643 + 1174
    assert usage.total_tokens == 1845
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 1174


async def test_a_stream_cut_short_is_an_upstream_error() -> None:
    raw = FILES["stream_text.sse"]
    cut = raw[: raw.rfind(b"data:")]  # the last event (with finishReason) never came
    events = stream.sse_events(_lines(cut, 64))
    with pytest.raises(errors.UpstreamError, match="ended before"):
        _ = [chunk async for chunk in stream.translate(events, "m", [])]


def test_usage_maps_every_gemini_count() -> None:
    usage = response.usage(
        {
            "promptTokenCount": 1000,
            "cachedContentTokenCount": 600,
            "toolUsePromptTokenCount": 50,
            "candidatesTokenCount": 200,
            "thoughtsTokenCount": 300,
            "totalTokenCount": 1550,
        }
    )
    assert usage == {
        "prompt_tokens": 1050,
        "completion_tokens": 500,
        "total_tokens": 1550,
        "prompt_tokens_details": {"cached_tokens": 600},
        "completion_tokens_details": {"reasoning_tokens": 300},
    }


# -- function calling ------------------------------------------------------------------


def test_tools_request_is_the_documented_one() -> None:
    documented = example("function_call.json")["request"]
    declarations = documented["tools"][0]["function_declarations"]
    ours = request.chat_request(
        {
            "messages": [_user(documented["contents"]["parts"]["text"])],
            "tools": _openai_tools(declarations),
        }
    )
    assert ours["tools"] == [{"functionDeclarations": declarations}]
    assert ours["contents"] == [{"role": "user", "parts": [documented["contents"]["parts"]]}]
    assert "toolConfig" not in ours


def test_function_call_answer_becomes_tool_calls() -> None:
    body = response.completion(example("function_call.json")["response"], "gemini-pro")
    parsed = ChatCompletion.model_validate(body)
    choice = parsed.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.id.startswith("call_") and call.type == "function"
    assert call.function.name == "find_theaters"
    assert orjson.loads(call.function.arguments) == {
        "movie": "Barbie",
        "location": "Mountain View, CA",
    }
    recorded = response.completion(example("function_call_recorded.json")["response"], "m")
    assert recorded["usage"]["prompt_tokens"] == 123
    assert recorded["usage"]["completion_tokens"] == 6


def test_tool_result_turn_matches_the_documented_conversation() -> None:
    documented = example("function_response_turn.json")
    contents = documented["request"]["contents"]
    call = contents[1]["parts"][0]["functionCall"]
    result = contents[2]["parts"][0]["functionResponse"]["response"]
    ours = request.chat_request(
        {
            "messages": [
                _user(contents[0]["parts"][0]["text"]),
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {
                                "name": call["name"],
                                "arguments": orjson.dumps(call["args"]).decode(),
                            },
                        }
                    ],
                },
                {
                    "role": "tool",
                    "tool_call_id": "call_1",
                    "content": orjson.dumps(result).decode(),
                },
            ]
        }
    )
    assert ours["contents"][:2] == contents[:2]
    # The result goes back in a user turn (Gemini's current convention; the notebook's
    # older "function" role is also accepted), named after the call it answers.
    assert ours["contents"][2] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "find_theaters", "response": {"output": result}}}],
    }
    answer = response.completion(documented["response"], "gemini-pro")
    assert answer["choices"][0]["message"]["content"].startswith("OK. I found two theaters")
    assert answer["choices"][0]["finish_reason"] == "stop"


def test_parallel_tool_results_share_one_turn_and_need_a_known_call() -> None:
    calls = [
        {"id": f"c{i}", "type": "function", "function": {"name": f"f{i}", "arguments": "{}"}}
        for i in range(2)
    ]
    messages: list[dict[str, Any]] = [
        _user("go"),
        {"role": "assistant", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "c0", "content": "zero"},
        {"role": "tool", "tool_call_id": "c1", "content": '{"n": 1}'},
    ]
    ours = request.chat_request({"messages": messages})
    assert len(ours["contents"]) == 3
    assert ours["contents"][2]["parts"] == [
        {"functionResponse": {"name": "f0", "response": {"output": "zero"}}},
        {"functionResponse": {"name": "f1", "response": {"output": {"n": 1}}}},
    ]
    messages[-1] = {"role": "tool", "tool_call_id": "unknown", "content": "x"}
    with pytest.raises(errors.BadRequest, match="tool_call_id"):
        request.chat_request({"messages": messages})


def test_tool_choice_and_system_match_the_documented_config() -> None:
    documented = example("function_calling_config.json")
    declarations = documented["tools"]["function_declarations"]
    system = documented["system_instruction"]["parts"]["text"]
    base = {
        "messages": [{"role": "system", "content": system}, _user("Make this place PURPLE!")],
        "tools": _openai_tools(declarations),
    }
    ours = request.chat_request(base)
    assert ours["systemInstruction"] == {"parts": [{"text": system}]}
    # A function without parameters is declared without them, as Gemini wants.
    assert ours["tools"][0]["functionDeclarations"][0] == {
        "name": "enable_lights",
        "description": "Turn on the lighting system.",
    }
    choices = {
        "none": {"mode": "NONE"},
        "auto": {"mode": "AUTO"},
        "required": {"mode": "ANY"},
    }
    for choice, config in choices.items():
        ours = request.chat_request({**base, "tool_choice": choice})
        assert ours["toolConfig"] == {"functionCallingConfig": config}
        assert config["mode"] == documented["modes"].get(choice, {"mode": "any"})["mode"].upper()
    named = {"type": "function", "function": {"name": "set_light_color"}}
    ours = request.chat_request({**base, "tool_choice": named})
    assert ours["toolConfig"]["functionCallingConfig"] == {
        "mode": "ANY",
        "allowedFunctionNames": ["set_light_color"],
    }


def test_thought_signature_survives_the_tool_round_trip() -> None:
    answer = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {
                            "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                            "thoughtSignature": "CpQBAdHtim8=",
                        }
                    ],
                },
                "finishReason": "STOP",
            }
        ]
    }
    call = response.completion(answer, "m")["choices"][0]["message"]["tool_calls"][0]
    assert split_call_id(call["id"]) == "CpQBAdHtim8="
    back = request.chat_request(
        {
            "messages": [
                _user("weather?"),
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": call["id"], "content": "sunny"},
            ]
        }
    )
    assert back["contents"][1]["parts"] == [
        {
            "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
            "thoughtSignature": "CpQBAdHtim8=",
        }
    ]


# -- safety ----------------------------------------------------------------------------


async def test_a_blocked_prompt_is_content_filtered() -> None:
    blocked = example("blocked_prompt.json")["response"]
    with pytest.raises(errors.ContentFiltered, match="SAFETY") as caught:
        response.completion(blocked, "m")
    assert caught.value.code == "content_filter" and caught.value.status == 400

    async def events() -> AsyncIterator[dict[str, Any]]:
        yield blocked

    with pytest.raises(errors.ContentFiltered):
        _ = [chunk async for chunk in stream.translate(events(), "m", [])]


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("OTHER", "stop"),
    ],
)
def test_finish_reasons(reason: str, expected: str) -> None:
    candidate = {"content": {"role": "model", "parts": [{"text": "x"}]}, "finishReason": reason}
    body = response.completion({"candidates": [candidate]}, "m")
    assert body["choices"][0]["finish_reason"] == expected


# -- request details -------------------------------------------------------------------


def test_generation_config() -> None:
    ours = request.chat_request(
        {
            "messages": [_user("Explain how AI works")],
            "max_tokens": 800,
            "temperature": 1.0,
            "top_p": 0.8,
            "stop": ["Title"],
            "n": 2,
            "seed": 7,
            "presence_penalty": 0.5,
            "frequency_penalty": 0.25,
            "response_format": {"type": "json_object"},
        }
    )
    assert ours["generationConfig"] == {
        "maxOutputTokens": 800,
        "temperature": 1.0,
        "topP": 0.8,
        "stopSequences": ["Title"],
        "candidateCount": 2,
        "seed": 7,
        "presencePenalty": 0.5,
        "frequencyPenalty": 0.25,
        "responseMimeType": "application/json",
    }
    assert request.chat_request(
        {"messages": [_user("x")], "max_completion_tokens": 5, "stop": "END"}
    )["generationConfig"] == {"maxOutputTokens": 5, "stopSequences": ["END"]}


def test_images() -> None:
    pixel = PIXEL
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{pixel}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.JPG?size=2"}},
    ]
    ours = request.chat_request({"messages": [{"role": "user", "content": content}]})
    assert ours["contents"][0]["parts"] == [
        {"text": "what is this?"},
        {"inlineData": {"mimeType": "image/png", "data": pixel}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.JPG?size=2"}},
    ]
    unknown = [{"type": "image_url", "image_url": {"url": "https://example.com/image"}}]
    with pytest.raises(errors.BadRequest, match="media type"):
        request.chat_request({"messages": [{"role": "user", "content": unknown}]})


def test_json_schema_is_converted_to_what_gemini_accepts() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "$defs": {"Unit": {"type": "string", "enum": ["c", "f"], "title": "Unit"}},
        "properties": {
            "city": {"type": "string", "format": "uri", "minLength": 1},
            "unit": {"$ref": "#/$defs/Unit"},
            "days": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]},
            "when": {"type": ["string", "null"], "format": "date-time"},
            "kind": {"const": "forecast"},
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        },
        "required": ["city"],
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "w", "strict": True, "schema": schema}}
    ours = request.chat_request({"messages": [_user("x")], "response_format": fmt})
    converted = ours["generationConfig"]["responseSchema"]
    assert converted == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "minLength": 1},
            "unit": {"type": "string", "enum": ["c", "f"], "title": "Unit"},
            "days": {"nullable": True, "type": "integer", "minimum": 1},
            "when": {"type": "string", "format": "date-time", "nullable": True},
            "kind": {"enum": ["forecast"], "type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["city"],
    }
    check_schema(converted, "response_schema")  # the simulator's Gemini checks accept it
    recursive = {"$defs": {"N": {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}}}}}
    with pytest.raises(errors.BadRequest, match="recursive"):
        request.chat_request(
            {
                "messages": [_user("x")],
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "n", "schema": {**recursive, "$ref": "#/$defs/N"}},
                },
            }
        )


# -- embeddings ------------------------------------------------------------------------


def test_embeddings_both_ways() -> None:
    documented = example("embed_batch.json")
    texts = [r["content"]["parts"][0]["text"] for r in documented["request"]["requests"]]
    body = {"model": "x", "input": texts}
    assert (
        embeddings.batch_request(body, "embedding-001", embeddings.inputs(body))
        == documented["request"]
    )
    result = embeddings.embeddings_body(documented["response"], "embedding-001", texts, None)
    parsed = CreateEmbeddingResponse.model_validate(result)
    assert [d.index for d in parsed.data] == [0, 1, 2]
    assert parsed.data[1].embedding == documented["response"]["embeddings"][1]["values"]
    # Gemini reports no tokens for embeddings: about four characters a token, per input.
    assert parsed.usage.prompt_tokens == sum((len(t) + 3) // 4 for t in texts)
    # And the simulator reads the documented request as OpenAI's.
    assert embed_inputs(documented["request"], "embedding-001", single=False) == {
        "model": "embedding-001",
        "input": texts,
    }


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "status", "retryable"),
    [
        ("api_key_invalid.json", errors.ProviderAuthError, 502, False),
        ("permission_denied.json", errors.ProviderAuthError, 502, False),
        ("resource_exhausted.json", errors.RateLimited, 429, True),
        ("token_limit.json", errors.ContextWindowExceeded, 400, False),
        ("invalid_argument.json", errors.BadRequest, 400, False),
        ("not_found.json", errors.UpstreamError, 502, True),
        ("internal.json", errors.UpstreamError, 502, True),
        ("unavailable.json", errors.Overloaded, 503, True),
        ("deadline_exceeded.json", errors.Timeout, 504, True),
    ],
)
def test_documented_errors(
    name: str, kind: type[errors.GatewayError], status: int, retryable: bool
) -> None:
    documented = example(f"errors/{name}")
    err = error_from_body(documented["status"], orjson.dumps(documented["body"]), {}, secrets=[])
    assert type(err) is kind
    assert err.status == status and err.retryable is retryable
    assert documented["body"]["error"]["message"] in err.message


def test_retry_info_gives_the_wait_and_keys_never_leak() -> None:
    documented = example("errors/resource_exhausted.json")
    err = error_from_body(429, orjson.dumps(documented["body"]), {}, secrets=[])
    assert err.retry_after == 26.0
    body = {
        "error": {
            "code": 400,
            "message": "bad key AIzaSyA1234567890abcdefghijkl",
            "status": "INVALID_ARGUMENT",
        }
    }
    err = error_from_body(400, orjson.dumps(body), {}, secrets=["AIzaSyA1234567890abcdefghijkl"])
    assert "AIza" not in err.message


def test_an_error_event_inside_a_stream() -> None:
    translator = stream.StreamTranslator("m", [])
    event = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    with pytest.raises(errors.Overloaded):
        translator.chunks(event)


# -- the simulator reads Google's documented requests ----------------------------------


def test_simulator_reads_the_documented_tool_conversation() -> None:
    documented = example("function_response_turn.json")["request"]
    tools = example("function_call.json")["request"]["tools"]
    body = chat_body({**documented, "tools": tools}, "gemini-pro", stream=False)
    messages = body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    call = messages[1]["tool_calls"][0]
    assert call["function"]["name"] == "find_theaters"
    assert messages[2]["tool_call_id"] == call["id"]
    assert "AMC Mountain View 16" in messages[2]["content"]
    assert [t["function"]["name"] for t in body["tools"]] == [
        "find_movies",
        "find_theaters",
        "get_showtimes",
    ]


def test_simulator_reads_the_documented_tool_config() -> None:
    documented = example("function_calling_config.json")
    base = {
        "system_instruction": documented["system_instruction"],
        "tools": [documented["tools"]],
        "contents": {"role": "user", "parts": {"text": "Make this place PURPLE!"}},
    }
    for mode, expected in (
        ("none", "none"),
        ("auto", None),
        ("any", "required"),
    ):
        config = documented["modes"][mode]
        body = chat_body({**base, "tool_config": {"function_calling_config": config}}, "m", False)
        assert body["messages"][0]["role"] == "system"
        assert body.get("tool_choice") == expected

"""The Anthropic adapter's request and response translation, both directions, on
Anthropic's documented wire examples (tests/providers/wire_examples/anthropic/), plus the
cases the docs don't show. Streams and errors: test_anthropic_streams.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from openai.types.chat import ChatCompletion

from lockgate.core import errors
from lockgate.core.types import Usage
from lockgate.providers.anthropic.request import messages_request
from lockgate.providers.anthropic.response import chat_completion
from lockgate.providers.simulator.anthropic_request import openai_body

EXAMPLES = Path(__file__).parent / "wire_examples" / "anthropic"
MODEL = "claude-sonnet-4-5"
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "location": {
            "type": "string",
            "description": "The city and state, e.g. San Francisco, CA",
        },
        "unit": {
            "type": "string",
            "enum": ["celsius", "fahrenheit"],
            "description": 'The unit of temperature, either "celsius" or "fahrenheit"',
        },
    },
    "required": ["location"],
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a given location",
        "parameters": WEATHER_SCHEMA,
    },
}
QUESTION = {"role": "user", "content": "What is the weather like in San Francisco?"}


def example(name: str) -> Any:
    return orjson.loads((EXAMPLES / name).read_bytes())


def translate(body: dict[str, Any]) -> dict[str, Any]:
    return messages_request(body, MODEL, 4096, stream=False)


# -- requests: OpenAI -> Anthropic, compared with the documented requests -------------------


def test_basic_request() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "Hello, world"}],
        "max_tokens": 1024,
    }
    assert translate(body) == example("basic_request.json")


def test_tool_request_with_required_choice() -> None:
    body = {
        "model": "m",
        "max_tokens": 1024,
        "tools": [WEATHER_TOOL],
        "tool_choice": "required",
        "messages": [QUESTION],
    }
    assert translate(body) == example("tool_use_request.json")


def test_tool_result_request() -> None:
    body = {
        "model": "m",
        "max_tokens": 1024,
        "tools": [WEATHER_TOOL],
        "messages": [
            QUESTION,
            {
                "role": "assistant",
                "content": "I'll check the current weather in San Francisco for you.",
                "tool_calls": [
                    {
                        "id": "toolu_01A09q90qw90lq917835lq9",
                        "type": "function",
                        "function": {
                            "name": "get_weather",
                            "arguments": '{"location": "San Francisco, CA", "unit": "celsius"}',
                        },
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "toolu_01A09q90qw90lq917835lq9",
                "content": "15 degrees",
            },
        ],
    }
    assert translate(body) == example("tool_result_request.json")


def test_vision_request() -> None:
    doc = example("vision_request.json")
    data = doc["messages"][0]["content"][0]["source"]["data"]
    url = doc["messages"][0]["content"][1]["source"]["url"]
    body = {
        "model": "m",
        "max_tokens": 1024,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}},
                    {"type": "image_url", "image_url": {"url": url, "detail": "high"}},
                    {"type": "text", "text": "Describe this image."},
                ],
            }
        ],
    }
    assert translate(body) == doc


def test_system_turns_and_parameters() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            {"role": "user", "content": "hello"},
            {"role": "user", "content": [{"type": "text", "text": "again"}]},
            {"role": "assistant", "content": "bonjour"},
            {"role": "user", "content": "how are you?"},
        ],
        "max_completion_tokens": 300,
        "max_tokens": 50,
        "stop": "END",
        "temperature": 0.2,
        "top_p": 0.9,
        "user": "user-42",
    }
    assert translate(body) == {
        "model": MODEL,
        "system": "Be brief.\n\nUse French.",
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "hello"}, {"type": "text", "text": "again"}],
            },
            {"role": "assistant", "content": "bonjour"},
            {"role": "user", "content": "how are you?"},
        ],
        "max_tokens": 300,
        "stop_sequences": ["END"],
        "temperature": 0.2,
        "top_p": 0.9,
        "metadata": {"user_id": "user-42"},
    }


def test_default_max_tokens_and_stream_flag() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert messages_request(body, MODEL, 777, stream=True)["max_tokens"] == 777
    assert messages_request(body, MODEL, 777, stream=True)["stream"] is True
    assert "stream" not in translate(body)


def test_parallel_tool_results_share_one_user_turn() -> None:
    calls = [
        {
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        }
        for i in range(2)
    ]
    body = {
        "model": "m",
        "tools": [WEATHER_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
        "messages": [
            QUESTION,
            {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "tool", "tool_call_id": "call_0", "content": "sunny"},
            {
                "role": "tool",
                "tool_call_id": "call_1",
                "content": [{"type": "text", "text": "rain"}],
            },
            {"role": "user", "content": "and tomorrow?"},
        ],
    }
    out = translate(body)
    assert out["tool_choice"] == {
        "type": "tool",
        "name": "get_weather",
        "disable_parallel_tool_use": True,
    }
    assert out["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "call_0", "name": "get_weather", "input": {}},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}},
        ],
    }
    assert out["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_0", "content": "sunny"},
            {
                "type": "tool_result",
                "tool_use_id": "call_1",
                "content": [{"type": "text", "text": "rain"}],
            },
            {"type": "text", "text": "and tomorrow?"},
        ],
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [("auto", {"type": "auto"}), ("none", {"type": "none"}), ("required", {"type": "any"})],
)
def test_tool_choice(choice: str, expected: dict[str, Any]) -> None:
    body = {"model": "m", "messages": [QUESTION], "tools": [WEATHER_TOOL], "tool_choice": choice}
    assert translate(body)["tool_choice"] == expected


def test_json_schema_becomes_a_system_instruction() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "system", "content": "Be brief."}, QUESTION],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "w", "schema": {"type": "object"}},
        },
    }
    system = translate(body)["system"]
    assert system.startswith("Be brief.\n\n")
    assert 'conforms to this JSON schema, and nothing else: {"type":"object"}' in system


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}
                ]
            },
            "messages[0].content[0].type",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image_url",
                                "image_url": {"url": "data:image/bmp;base64,AAAA"},
                            }
                        ],
                    }
                ]
            },
            "messages[0].content[0].image_url",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "c", "function": {"name": "f", "arguments": "{not json"}}
                        ],
                    }
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
    ],
)
def test_refused_requests_name_the_parameter(change: dict[str, Any], param: str) -> None:
    body = {"model": "m", "messages": [QUESTION], **change}
    with pytest.raises(errors.BadRequest) as caught:
        translate(body)
    assert caught.value.status == 400
    assert caught.value.param == param


# -- the simulator reads the documented requests the other way -----------------------------


def test_simulator_reads_the_documented_tool_result_request() -> None:
    body = openai_body(example("tool_result_request.json"))
    assert body["max_tokens"] == 1024
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER_SCHEMA,
                "description": "Get the current weather in a given location",
            },
        }
    ]
    assert body["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "toolu_01A09q90qw90lq917835lq9",
        "content": "15 degrees",
    }
    assert orjson.loads(body["messages"][1]["tool_calls"][0]["function"]["arguments"]) == {
        "location": "San Francisco, CA",
        "unit": "celsius",
    }


def test_simulator_reads_the_documented_vision_request() -> None:
    parts = openai_body(example("vision_request.json"))["messages"][0]["content"]
    assert parts[0]["image_url"]["url"].startswith("data:image/png;base64,iVBORw0KGgo")
    assert parts[1]["image_url"]["url"].startswith("https://upload.wikimedia.org/")
    assert parts[2] == {"type": "text", "text": "Describe this image."}


# -- responses: Anthropic -> OpenAI --------------------------------------------------------


def test_basic_response() -> None:
    reply = ChatCompletion.model_validate(chat_completion(example("basic_response.json"), MODEL))
    assert reply.id == "chatcmpl-msg_013Zva2CMHLNnXjNJJKqJ2EF"
    assert reply.model == "claude-sonnet-4-5-20250929"
    assert reply.choices[0].message.content == "Hi! My name is Claude."
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (2095, 503)
    assert reply.usage.total_tokens == 2598


def test_tool_use_response() -> None:
    reply = ChatCompletion.model_validate(chat_completion(example("tool_use_response.json"), MODEL))
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "I'll check the current weather in San Francisco for you."
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.id == "toolu_01A09q90qw90lq917835lq9"
    assert call.function.name == "get_weather"
    assert orjson.loads(call.function.arguments) == {
        "location": "San Francisco, CA",
        "unit": "celsius",
    }


def test_cache_writes_and_reads_count_in_the_prompt() -> None:
    written = example("prompt_caching_response.json")
    usage = chat_completion(written, MODEL)["usage"]
    assert usage["prompt_tokens"] == 21 + 188086
    assert usage["total_tokens"] == 21 + 188086 + 393
    billed = Usage.from_openai(usage)
    assert (billed.cached_tokens, billed.cache_creation_tokens) == (0, 188086)
    # The docs' second call: the same prefix read back from the cache.
    read = {**written["usage"], "cache_creation_input_tokens": 0, "cache_read_input_tokens": 188086}
    billed = Usage.from_openai(chat_completion({**written, "usage": read}, MODEL)["usage"])
    assert (billed.prompt_tokens, billed.cached_tokens, billed.cache_creation_tokens) == (
        188107,
        188086,
        0,
    )


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_stop_reasons(stop: str, finish: str) -> None:
    message = {**example("basic_response.json"), "stop_reason": stop}
    assert chat_completion(message, MODEL)["choices"][0]["finish_reason"] == finish


def test_a_refusal_that_says_nothing_is_a_content_filter_error() -> None:
    message = {
        **example("basic_response.json"),
        "content": [],
        "stop_reason": "refusal",
        "stop_details": {"type": "refusal", "category": "cyber", "explanation": "Usage Policy."},
    }
    with pytest.raises(errors.ContentFiltered) as caught:
        chat_completion(message, MODEL)
    assert caught.value.status == 400 and caught.value.code == "content_filter"
    assert "Usage Policy." in caught.value.message


def test_extended_thinking_passes_through_and_comes_back_as_reasoning() -> None:
    thinking = {"type": "enabled", "budget_tokens": 2000}
    body = {"model": "m", "messages": [QUESTION], "thinking": thinking, "top_k": 5}
    out = translate(body)
    assert (out["thinking"], out["top_k"]) == (thinking, 5)
    message = {
        **example("basic_response.json"),
        "content": [
            {"type": "thinking", "thinking": "Let me think.", "signature": "EqQB"},
            {"type": "text", "text": "27 * 453 = 12,231"},
        ],
    }
    reply = chat_completion(message, MODEL)["choices"][0]["message"]
    assert reply["content"] == "27 * 453 = 12,231"
    assert reply["reasoning_content"] == "Let me think."

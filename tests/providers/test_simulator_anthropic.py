"""The simulator's Anthropic wire, read by the official `anthropic` SDK and by raw HTTP:
answers, the event sequence, tools, validation and errors in Anthropic's shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import pytest

from lockgate.providers.simulator import Simulator
from tests.conftest import PROVIDER_KEY, SimFactory

MODEL = "sim-claude"  # not a real model name: the SDK warns about deprecated ones
HELLO: list[Any] = [{"role": "user", "content": "Hello"}]
WEATHER: Any = {
    "name": "get_weather",
    "description": "Get the current weather in a given location",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    },
}


@pytest.fixture
async def sim(make_sim: SimFactory) -> Simulator:
    return await make_sim(
        completion_tokens=6, context_window=2_000, content_filter_phrase="forbidden topic"
    )


@pytest.fixture
def sdk_client(sim: Simulator) -> anthropic.AsyncAnthropic:
    # Built outside the event loop: the SDK reads certificates when it is constructed.
    return anthropic.AsyncAnthropic(base_url=sim.root_url, api_key=PROVIDER_KEY, max_retries=0)


@pytest.fixture
async def sdk(sdk_client: anthropic.AsyncAnthropic) -> AsyncIterator[anthropic.AsyncAnthropic]:
    yield sdk_client
    await sdk_client.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(
    http: aiohttp.ClientSession, sim: Simulator, body: Any, **headers: str
) -> tuple[int, Any, Any]:
    sent = {"x-api-key": PROVIDER_KEY, "anthropic-version": "2023-06-01", **headers}
    async with http.post(f"{sim.root_url}/v1/messages", json=body, headers=sent) as resp:
        return resp.status, await resp.json(content_type=None), resp.headers


async def test_a_message_parses_with_the_sdk(sdk: anthropic.AsyncAnthropic) -> None:
    raw = await sdk.messages.with_raw_response.create(
        model=MODEL, max_tokens=100, system="Be brief.", messages=HELLO
    )
    message = await raw.parse()
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_")
    assert message.content[0].type == "text" and message.content[0].text.startswith("Simulated")
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 6 and message.usage.input_tokens > 0
    assert message.usage.cache_read_input_tokens == 0
    assert raw.headers["request-id"].startswith("req_")


async def test_max_tokens_stops_the_answer(sdk: anthropic.AsyncAnthropic) -> None:
    message = await sdk.messages.create(model=MODEL, max_tokens=3, messages=HELLO)
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 3


async def test_the_stream_events_in_anthropics_order(
    sdk: anthropic.AsyncAnthropic, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    async with sdk.messages.stream(model=MODEL, max_tokens=100, messages=HELLO) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text == final.content[0].text  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 6
    sent = {"x-api-key": PROVIDER_KEY, "anthropic-version": "2023-06-01"}
    body = {"model": MODEL, "max_tokens": 100, "messages": HELLO, "stream": True}
    async with http.post(f"{sim.root_url}/v1/messages", json=body, headers=sent) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        names = [
            line.split(b":", 1)[1].strip().decode()
            for line in (await resp.read()).splitlines()
            if line.startswith(b"event:")
        ]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 6,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


async def test_tool_use_and_its_result(sdk: anthropic.AsyncAnthropic) -> None:
    first = await sdk.messages.create(
        model=MODEL,
        max_tokens=100,
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    )
    assert first.stop_reason == "tool_use"
    call = first.content[0]
    assert call.type == "tool_use" and call.id.startswith("toolu_")
    assert call.name == "get_weather" and "location" in call.input  # type: ignore[operator]
    second = await sdk.messages.create(
        model=MODEL,
        max_tokens=100,
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [call.model_dump()]},  # type: ignore[list-item]
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}],
            },
        ],
    )
    assert second.content[0].text.startswith("Simulated answer from the tool result")  # type: ignore[union-attr]


async def test_a_streamed_tool_call_parses(sdk: anthropic.AsyncAnthropic) -> None:
    async with sdk.messages.stream(
        model=MODEL,
        max_tokens=100,
        tools=[WEATHER],
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    ) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "tool_use" and final.content[0].input == {
        "location": "simulated"
    }


async def test_a_filtered_prompt_is_a_refusal(sdk: anthropic.AsyncAnthropic) -> None:
    message = await sdk.messages.create(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "a forbidden topic"}]
    )
    assert message.stop_reason == "refusal" and message.content == []
    async with sdk.messages.stream(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "a forbidden topic"}]
    ) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "refusal" and final.content == []


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
async def test_injected_errors_in_anthropics_shape(
    sdk: anthropic.AsyncAnthropic,
    sim: Simulator,
    status: int,
    error: type[anthropic.APIStatusError],
    kind: str,
) -> None:
    sim.options = sim.options.model_copy(update={"error_rates": {status: 1.0}})
    with pytest.raises(error) as caught:
        await sdk.messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    body: Any = caught.value.body
    assert caught.value.status_code == status
    assert body["type"] == "error" and body["error"]["type"] == kind
    assert body["request_id"] == caught.value.response.headers["request-id"]


async def test_rate_limits_in_anthropics_headers(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(rpm=1)
    body = {"model": MODEL, "max_tokens": 10, "messages": HELLO}
    status, _, headers = await post(http, sim, body)
    assert status == 200
    assert headers["anthropic-ratelimit-requests-limit"] == "1"
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    assert not any(name.lower().startswith("x-ratelimit") for name in headers)
    status, answer, headers = await post(http, sim, body)
    assert status == 429 and answer["error"]["type"] == "rate_limit_error"
    assert int(headers["retry-after"]) >= 1


async def test_the_key_travels_as_x_api_key(sim: Simulator, http: aiohttp.ClientSession) -> None:
    body = {"model": MODEL, "max_tokens": 10, "messages": HELLO}
    # x-api-key is the credential when present, whatever else the request carries.
    status, answer, _ = await post(
        http, sim, body, **{"x-api-key": "wrong", "Authorization": f"Bearer {PROVIDER_KEY}"}
    )
    assert status == 401
    assert answer["error"] == {"type": "authentication_error", "message": "invalid x-api-key"}
    assert (await post(http, sim, body))[0] == 200


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_tokens": None}, "max_tokens: Field required"),
        ({"messages": []}, "messages: at least one message is required"),
        (
            {"messages": [{"role": "system", "content": "x"}]},
            'messages: Unexpected role "system"',
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]},
            "messages.0.content.0.source: Input tag None",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}
                        ],
                    },
                    {"role": "user", "content": "no result"},
                ]
            },
            "messages.1: `tool_use` ids were found without `tool_result` blocks",
        ),
        ({"tool_choice": {"type": "sometimes"}}, "tool_choice: Input tag 'sometimes'"),
    ],
)
async def test_requests_anthropic_would_refuse(
    sim: Simulator, http: aiohttp.ClientSession, change: dict[str, Any], message: str
) -> None:
    body = {
        k: v
        for k, v in {"model": MODEL, "max_tokens": 10, "messages": HELLO, **change}.items()
        if v is not None
    }
    status, answer, _ = await post(http, sim, body)
    assert status == 400
    assert answer["error"]["type"] == "invalid_request_error"
    assert answer["error"]["message"].startswith(message)


async def test_the_version_header_is_required(sim: Simulator, http: aiohttp.ClientSession) -> None:
    async with http.post(
        f"{sim.root_url}/v1/messages",
        json={"model": MODEL, "max_tokens": 10, "messages": HELLO},
        headers={"x-api-key": PROVIDER_KEY},
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["message"] == "anthropic-version: header is required"


async def test_consecutive_turns_are_combined_as_anthropic_does(
    sdk: anthropic.AsyncAnthropic,
) -> None:
    message = await sdk.messages.create(
        model=MODEL,
        max_tokens=10,
        messages=[{"role": "user", "content": "one"}, {"role": "user", "content": "two"}],
    )
    assert message.stop_reason == "max_tokens" or message.stop_reason == "end_turn"


@pytest.mark.parametrize(
    ("words", "max_tokens", "message"),
    [
        (3_000, 10, "prompt is too long: "),
        (1_000, 1_500, "input length and `max_tokens` exceed context limit: "),
    ],
)
async def test_context_window_errors_in_anthropics_words(
    sdk: anthropic.AsyncAnthropic, words: int, max_tokens: int, message: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        await sdk.messages.create(
            model=MODEL,
            max_tokens=max_tokens,
            messages=[{"role": "user", "content": "word " * words}],
        )
    body: Any = caught.value.body
    assert body["error"]["message"].startswith(message)
    assert body["error"]["message"].endswith(("2000 maximum", "and try again"))

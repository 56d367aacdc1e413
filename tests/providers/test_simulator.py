"""The provider simulator driven by the official openai SDK: wire format and every fault."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from lockgate.providers.simulator import Simulator, SimulatorOptions

KEY = "sk-sim-test-key-0123456789"
HELLO: list[Any] = [{"role": "user", "content": "Hello there, simulator"}]
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["c", "f"]},
                "days": {"type": "integer", "minimum": 1},
            },
            "required": ["city", "days"],
        },
    },
}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(SimulatorOptions(api_key=KEY, seed=1)) as simulator:
        yield simulator


@pytest.fixture
def http_client() -> openai.DefaultAsyncHttpxClient:
    """Built outside the event loop: the SDK's HTTP client reads files when it is created."""
    return openai.DefaultAsyncHttpxClient()


@pytest.fixture
async def oai(
    sim: Simulator, http_client: openai.DefaultAsyncHttpxClient
) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=sim.base_url, api_key=KEY, max_retries=0, http_client=http_client
    ) as client:
        yield client


async def _post_raw(sim: Simulator, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{sim.base_url}{path}", data=body, headers=headers) as resp,
    ):
        return resp.status, orjson.loads(await resp.read())


def _error(body: dict[str, Any]) -> dict[str, Any]:
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and err["message"]
    return err


async def test_non_streaming_completion(sim: Simulator, oai: openai.AsyncOpenAI) -> None:
    raw = await oai.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO, user="u-1"
    )
    reply = raw.parse()
    assert reply.id.startswith("chatcmpl-")
    assert reply.object == "chat.completion"
    assert reply.model == "gpt-4o-mini"
    assert reply.system_fingerprint
    assert abs(reply.created - time.time()) < 5
    [choice] = reply.choices
    assert choice.index == 0
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.refusal is None
    assert choice.message.content is not None
    assert choice.message.content.startswith("Simulated reply")
    assert len(choice.message.content.split()) == 16
    usage = reply.usage
    assert usage is not None
    assert usage.completion_tokens == 16
    assert usage.prompt_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 0
    assert raw.headers["x-request-id"].startswith("req_")
    assert "x-ratelimit-limit-requests" not in raw.headers
    again = await oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert again.choices[0].message.content == choice.message.content, "deterministic"
    [record, _] = sim.requests
    assert record.method == "POST"
    assert record.path == "/v1/chat/completions"
    assert record.body["messages"] == HELLO
    assert record.body["user"] == "u-1"
    assert record.headers["Authorization"] == f"Bearer {KEY}"
    assert record.headers["authorization"] == f"Bearer {KEY}"
    assert sim.counts["/v1/chat/completions"] == 2


async def test_max_tokens_cuts_with_length(oai: openai.AsyncOpenAI) -> None:
    reply = await oai.chat.completions.create(model="m", messages=HELLO, max_tokens=3)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 3
    assert len((reply.choices[0].message.content or "").split()) == 3
    newer = await oai.chat.completions.create(model="m", messages=HELLO, max_completion_tokens=5)
    assert newer.usage is not None and newer.usage.completion_tokens == 5


async def test_streaming_with_usage_matches_non_streaming(oai: openai.AsyncOpenAI) -> None:
    whole = await oai.chat.completions.create(model="gpt-4o", messages=HELLO)
    stream = await oai.chat.completions.create(
        model="gpt-4o", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" and c.model == "gpt-4o" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks[-2:-1]] == ["stop"]
    assert chunks[-1].choices == []
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].usage is not None and whole.usage is not None
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    # one role chunk, one chunk per token, one finish chunk, one usage chunk
    assert len(chunks) == 16 + 3


async def test_stream_wire_framing(sim: Simulator) -> None:
    sim.options = SimulatorOptions(api_key=KEY, stream_chunks=4)
    body = {"model": "m", "messages": HELLO, "stream": True}
    headers = {"Authorization": f"Bearer {KEY}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{sim.base_url}/chat/completions", json=body, headers=headers) as resp,
    ):
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        raw = await resp.read()
    events = raw.split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""]
    payloads = [orjson.loads(e.removeprefix(b"data: ")) for e in events[:-2]]
    assert len(payloads) == 1 + 4 + 1, "role, stream_chunks content chunks, finish"
    assert all("usage" not in p for p in payloads), "no usage key without include_usage"
    assert payloads[0]["choices"][0]["delta"] == {
        "role": "assistant",
        "content": "",
        "refusal": None,
    }
    assert payloads[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }


async def test_tools_round_trip(sim: Simulator, oai: openai.AsyncOpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = await oai.chat.completions.create(model="m", messages=messages, tools=[WEATHER_TOOL])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.id.startswith("call_")
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert orjson.loads(call.function.arguments) == {"city": "simulated", "days": 1}
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21}'},
    ]
    second = await oai.chat.completions.create(model="m", messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].finish_reason == "stop"
    assert '{"temp_c": 21}' in (second.choices[0].message.content or "")
    assert sim.requests[-1].body["messages"][-1]["tool_call_id"] == call.id

    other = {"type": "function", "function": {"name": "noop", "parameters": {}}}
    named = await oai.chat.completions.create(
        model="m",
        messages=HELLO,
        tools=[WEATHER_TOOL, other],
        tool_choice={"type": "function", "function": {"name": "noop"}},
    )
    [picked] = named.choices[0].message.tool_calls or []
    assert picked.function.name == "noop" and picked.function.arguments == "{}"
    none = await oai.chat.completions.create(
        model="m", messages=HELLO, tools=[WEATHER_TOOL], tool_choice="none"
    )
    assert none.choices[0].finish_reason == "stop" and none.choices[0].message.content


async def test_streamed_tool_call(oai: openai.AsyncOpenAI) -> None:
    stream = await oai.chat.completions.create(
        model="m", messages=HELLO, tools=[WEATHER_TOOL], stream=True
    )
    ids, name, arguments, finish = set(), "", "", None
    async for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                assert call.index == 0
                if call.id:
                    ids.add(call.id)
                if call.function and call.function.name:
                    name = call.function.name
                if call.function and call.function.arguments:
                    arguments += call.function.arguments
            finish = choice.finish_reason or finish
    assert len(ids) == 1
    assert name == "get_weather"
    assert orjson.loads(arguments) == {"city": "simulated", "days": 1}
    assert finish == "tool_calls"


async def test_n_choices_and_logprobs(oai: openai.AsyncOpenAI) -> None:
    reply = await oai.chat.completions.create(
        model="m", messages=HELLO, n=2, logprobs=True, top_logprobs=2
    )
    assert [c.index for c in reply.choices] == [0, 1]
    assert reply.choices[0].message.content != reply.choices[1].message.content
    assert reply.usage is not None and reply.usage.completion_tokens == 32
    logprobs = reply.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None
    assert len(logprobs.content) == 16
    first = logprobs.content[0]
    assert first.token == "Simulated" and first.logprob < 0
    assert first.bytes == list(b"Simulated")
    assert len(first.top_logprobs) == 2
    assert "".join(t.token for t in logprobs.content) == reply.choices[0].message.content

    stream = await oai.chat.completions.create(model="m", messages=HELLO, n=2, stream=True)
    texts = ["", ""]
    async for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert texts == [c.message.content for c in reply.choices]


async def test_json_response_formats(oai: openai.AsyncOpenAI) -> None:
    obj = await oai.chat.completions.create(
        model="m", messages=HELLO, response_format={"type": "json_object"}
    )
    assert orjson.loads(obj.choices[0].message.content or "")["reply"].startswith("Simulated")
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "when": {"type": "string", "format": "date"},
        },
        "required": ["name", "age", "tags", "when"],
        "additionalProperties": False,
    }
    shaped = await oai.chat.completions.create(
        model="m",
        messages=HELLO,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": schema, "strict": True},
        },
    )
    value = orjson.loads(shaped.choices[0].message.content or "")
    assert value == {"name": "simulated", "age": 1, "tags": ["simulated"], "when": "2024-01-01"}


async def test_embeddings_float_and_base64(sim: Simulator, oai: openai.AsyncOpenAI) -> None:
    default = await oai.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])
    assert sim.requests[-1].body["encoding_format"] == "base64", "the SDK asks for base64"
    assert [d.index for d in default.data] == [0, 1]
    assert all(len(d.embedding) == 1536 for d in default.data)
    assert math.isclose(math.fsum(x * x for x in default.data[0].embedding), 1.0, rel_tol=1e-4)
    assert default.data[0].embedding != default.data[1].embedding
    assert default.usage.prompt_tokens == default.usage.total_tokens > 0
    floats = await oai.embeddings.create(
        model="text-embedding-3-small", input=["alpha", "beta"], encoding_format="float"
    )
    assert [d.embedding for d in floats.data] == [d.embedding for d in default.data]
    small = await oai.embeddings.create(model="e", input="alpha", dimensions=64)
    assert len(small.data[0].embedding) == 64
    tokens = await oai.embeddings.create(model="e", input=[[1, 2, 3], [4, 5]])
    assert len(tokens.data) == 2 and tokens.usage.prompt_tokens == 5
    with pytest.raises(openai.BadRequestError):
        await oai.embeddings.create(model="e", input="alpha", dimensions=4096)


async def test_models_list_and_unknown_model(sim: Simulator, oai: openai.AsyncOpenAI) -> None:
    defaults = await oai.models.list()
    assert "gpt-4o-mini" in [m.id for m in defaults.data]
    sim.options = SimulatorOptions(api_key=KEY, models=["alpha", "beta"])
    listed = await oai.models.list()
    assert [m.id for m in listed.data] == ["alpha", "beta"]
    assert all(m.object == "model" for m in listed.data)
    assert (await oai.models.retrieve("beta")).id == "beta"
    with pytest.raises(openai.NotFoundError) as info:
        await oai.chat.completions.create(model="gamma", messages=HELLO)
    assert isinstance(info.value.body, dict) and info.value.body["code"] == "model_not_found"


async def test_rpm_limit_answers_429_with_headers(sim: Simulator, oai: openai.AsyncOpenAI) -> None:
    sim.options = SimulatorOptions(api_key=KEY, rpm=2, tpm=100_000)
    raw = await oai.chat.completions.with_raw_response.create(model="m", messages=HELLO)
    assert raw.headers["x-ratelimit-limit-requests"] == "2"
    assert raw.headers["x-ratelimit-remaining-requests"] == "1"
    assert raw.headers["x-ratelimit-reset-requests"] in ("29.999s", "30s")
    assert raw.headers["x-ratelimit-limit-tokens"] == "100000"
    assert int(raw.headers["x-ratelimit-remaining-tokens"]) < 100_000
    assert raw.headers["x-ratelimit-reset-tokens"].endswith("ms")
    await oai.chat.completions.create(model="m", messages=HELLO)
    with pytest.raises(openai.RateLimitError) as info:
        await oai.chat.completions.create(model="m", messages=HELLO)
    headers = info.value.response.headers
    assert 29 <= int(headers["retry-after"]) <= 30
    assert 29_000 <= int(headers["retry-after-ms"]) <= 30_000
    assert headers["x-ratelimit-remaining-requests"] == "0"
    reset = headers["x-ratelimit-reset-requests"]
    assert reset.endswith("s") and 59.0 < float(reset[:-1]) <= 60.0
    assert isinstance(info.value.body, dict)
    assert info.value.body["code"] == "rate_limit_exceeded"
    assert info.value.body["type"] == "requests"
    sim.reset()
    await oai.chat.completions.create(model="m", messages=HELLO)


async def test_tpm_limit(sim: Simulator, oai: openai.AsyncOpenAI) -> None:
    sim.options = SimulatorOptions(api_key=KEY, tpm=40)
    first = await oai.chat.completions.create(model="m", messages=HELLO)
    assert first.usage is not None and first.usage.total_tokens <= 40
    with pytest.raises(openai.RateLimitError) as info:
        await oai.chat.completions.create(model="m", messages=HELLO)
    assert isinstance(info.value.body, dict) and info.value.body["type"] == "tokens"
    assert int(info.value.response.headers["retry-after"]) >= 1


async def test_injected_errors(sim: Simulator, oai: openai.AsyncOpenAI) -> None:
    sim.options = SimulatorOptions(api_key=KEY, error_rates={500: 1.0})
    with pytest.raises(openai.InternalServerError) as info:
        await oai.chat.completions.create(model="m", messages=HELLO)
    assert info.value.status_code == 500
    assert isinstance(info.value.body, dict) and info.value.body["type"] == "server_error"
    with pytest.raises(openai.InternalServerError):
        await oai.embeddings.create(model="e", input="x")
    assert (await oai.models.list()).data, "models are never failed by error_rates"

    async def outcomes() -> list[int]:
        sim.options = SimulatorOptions(api_key=KEY, error_rates={503: 0.3, 429: 0.2}, seed=42)
        seen: list[int] = []
        for _ in range(20):
            try:
                await oai.chat.completions.create(model="m", messages=HELLO)
                seen.append(200)
            except openai.APIStatusError as exc:
                seen.append(exc.status_code)
        return seen

    first = await outcomes()
    assert await outcomes() == first, "a seed makes the faults reproducible"
    assert {200, 503, 429} <= set(first)


async def test_outage_window_then_recovery(sim: Simulator, oai: openai.AsyncOpenAI) -> None:
    sim.options = SimulatorOptions(api_key=KEY, outages=[(0.0, 0.3)])
    sim.reset()
    with pytest.raises(openai.APIStatusError) as info:
        await oai.chat.completions.create(model="m", messages=HELLO)
    assert info.value.status_code == 503
    await asyncio.sleep(0.35)
    reply = await oai.chat.completions.create(model="m", messages=HELLO)
    assert reply.choices[0].message.content


async def test_outage_reset_mode_drops_connections(sim: Simulator, oai: openai.AsyncOpenAI) -> None:
    sim.options = SimulatorOptions(api_key=KEY, outages=[(0.0, 60.0)], outage_mode="reset")
    with pytest.raises(openai.APIConnectionError):
        await oai.chat.completions.create(model="m", messages=HELLO)
    assert sim.counts["/v1/chat/completions"] == 1


async def test_broken_stream_ends_without_done(sim: Simulator, oai: openai.AsyncOpenAI) -> None:
    sim.options = SimulatorOptions(api_key=KEY, broken_stream_rate=1.0, stream_chunks=10)
    stream = await oai.chat.completions.create(model="m", messages=HELLO, stream=True)
    received: list[Any] = []

    async def consume() -> None:
        async for chunk in stream:
            received.append(chunk)

    with pytest.raises(openai.APIConnectionError):
        await consume()
    assert 1 <= len(received) <= 11, "cut after the role chunk, before the finish chunk"
    assert all(c.finish_reason is None for chunk in received for c in chunk.choices)

    body = {"model": "m", "messages": HELLO, "stream": True}
    headers = {"Authorization": f"Bearer {KEY}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{sim.base_url}/chat/completions", json=body, headers=headers) as resp,
    ):
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()


async def test_context_window_and_content_filter(sim: Simulator, oai: openai.AsyncOpenAI) -> None:
    sim.options = SimulatorOptions(
        api_key=KEY, context_window=50, content_filter_phrase="forbidden"
    )
    with pytest.raises(openai.BadRequestError) as info:
        await oai.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "word " * 400}]
        )
    assert isinstance(info.value.body, dict)
    assert info.value.body["code"] == "context_length_exceeded"
    assert info.value.body["param"] == "messages"
    assert "maximum context length is 50 tokens" in info.value.body["message"]
    with pytest.raises(openai.BadRequestError) as info:
        await oai.chat.completions.create(model="m", messages=HELLO, max_tokens=45)
    assert isinstance(info.value.body, dict)
    assert info.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as info:
        await oai.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "say something FORBIDDEN"}]
        )
    assert isinstance(info.value.body, dict) and info.value.body["code"] == "content_filter"
    await oai.chat.completions.create(model="m", messages=HELLO)


async def test_api_key_checked(sim: Simulator, http_client: openai.DefaultAsyncHttpxClient) -> None:
    async with openai.AsyncOpenAI(
        base_url=sim.base_url, api_key="sk-wrong-key-abcdef", max_retries=0, http_client=http_client
    ) as bad:
        with pytest.raises(openai.AuthenticationError) as info:
            await bad.chat.completions.create(model="m", messages=HELLO)
        assert isinstance(info.value.body, dict)
        assert info.value.body["code"] == "invalid_api_key"
        assert "sk-wrong-key-abcdef" not in info.value.body["message"]
        with pytest.raises(openai.AuthenticationError):
            await bad.models.list()
        async with aiohttp.ClientSession() as http, http.get(f"{sim.base_url}/models") as resp:
            assert resp.status == 401
            assert _error(await resp.json())["code"] is None, "no key at all: OpenAI's code null"
        sim.options = SimulatorOptions()
        assert (await bad.models.list()).data, "no api_key accepts any key"


async def test_latency_ttft_and_inter_token(sim: Simulator, oai: openai.AsyncOpenAI) -> None:
    sim.options = SimulatorOptions(api_key=KEY, latency="fixed:200ms")
    started = time.perf_counter()
    await oai.chat.completions.create(model="m", messages=HELLO)
    assert time.perf_counter() - started >= 0.2

    sim.options = SimulatorOptions(api_key=KEY, ttft="150ms", inter_token="20", stream_chunks=5)
    started = time.perf_counter()
    stream = await oai.chat.completions.create(model="m", messages=HELLO, stream=True)
    arrivals = [time.perf_counter() - started async for _ in stream]
    assert arrivals[0] >= 0.15
    # four paced gaps of 20ms between the five content chunks
    assert arrivals[-1] - arrivals[0] >= 0.08


async def test_bad_requests_are_openai_shaped(sim: Simulator) -> None:
    status, body = await _post_raw(sim, "/chat/completions", b'{"model": "m", "messages": [')
    assert status == 400
    assert "parse the JSON" in _error(body)["message"]
    status, body = await _post_raw(sim, "/chat/completions", b'{"messages": []}')
    assert (status, _error(body)["param"]) == (400, "model")
    status, body = await _post_raw(sim, "/chat/completions", b'{"model": "m"}')
    err = _error(body)
    assert (status, err["param"], err["code"]) == (400, "messages", "missing_required_parameter")
    status, body = await _post_raw(
        sim, "/chat/completions", b'{"model": "m", "messages": [{"content": "x"}]}'
    )
    assert (status, _error(body)["param"]) == (400, "messages[0].role")
    status, body = await _post_raw(
        sim, "/chat/completions", b'{"model": "m", "messages": [{"role": "user"}], "n": 0}'
    )
    assert (status, _error(body)["param"]) == (400, "n")
    status, body = await _post_raw(sim, "/embeddings", b'{"model": "e"}')
    assert (status, _error(body)["param"]) == (400, "input")
    status, body = await _post_raw(sim, "/nothing", b"{}")
    assert status == 404
    assert _error(body)["message"] == "Invalid URL (POST /v1/nothing)"
    assert [r.body for r in sim.requests[:2]] == [None, {"messages": []}]


async def test_records_are_bounded_and_reset(http_client: openai.DefaultAsyncHttpxClient) -> None:
    async with (
        Simulator(SimulatorOptions(), max_records=5) as small,
        openai.AsyncOpenAI(
            base_url=small.base_url, api_key="any", max_retries=0, http_client=http_client
        ) as client,
    ):
        for _ in range(12):
            await client.models.list()
        assert len(small.requests) == 5
        assert small.counts["/v1/models"] == 12
        assert small.statuses[200] == 12
        assert small.stats()["requests"] == 12
        small.reset()
        assert small.requests == [] and not small.counts and not small.statuses
    with pytest.raises(RuntimeError):
        _ = small.base_url

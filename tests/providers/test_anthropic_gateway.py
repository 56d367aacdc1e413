"""The Anthropic adapter end to end: the `openai` SDK -> lockgate -> Anthropic's wire (the
simulator, or a server replaying Anthropic's documented answers). Asserts what reached the
upstream, what the client saw, and what was billed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from aiohttp import web

from lockgate.providers.simulator import Simulator
from tests.conftest import PROVIDER_KEY, Gateway, GatewayFactory, SimFactory

EXAMPLES = Path(__file__).parent / "wire_examples" / "anthropic"
CACHED_ANSWER = (EXAMPLES / "prompt_caching_response.json").read_bytes()
BASIC_SSE = (EXAMPLES / "stream_basic.sse").read_bytes()
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def anthropic(api_base: str, **extra: Any) -> list[dict[str, Any]]:
    deployment = {
        "provider": "anthropic",
        "model": "claude-sonnet-4-5",
        "id": "claude",
        "api_base": api_base,
        "api_key": PROVIDER_KEY,
        **extra,
    }
    return [{"name": "claude", "deployments": [deployment]}]


@pytest.fixture
async def sim(make_sim: SimFactory) -> Simulator:
    return await make_sim(completion_tokens=8)


@pytest.fixture
async def gw(make_gateway: GatewayFactory, sim: Simulator) -> Gateway:
    return await make_gateway(anthropic(sim.root_url), retry={"retries": 0})


@pytest.fixture
async def client(gw: Gateway) -> AsyncIterator[openai.AsyncOpenAI]:
    async with gw.client() as c:
        yield c


async def test_what_reaches_anthropic(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model="claude",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello"},
        ],
        temperature=0.5,
        stop=["END"],
        user="user-7",
    )
    reply = raw.parse()
    assert reply.choices[0].message.content and reply.choices[0].finish_reason == "stop"
    assert raw.headers["x-lockgate-provider"] == "anthropic"
    [request] = sim.requests
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == PROVIDER_KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in request.headers
    assert request.body == {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": "hello"}],
        "system": "Be brief.",
        "max_tokens": 4096,  # Anthropic requires it; the adapter's documented default
        "stop_sequences": ["END"],
        "temperature": 0.5,
        "metadata": {"user_id": "user-7"},
    }


async def test_parallel_tool_results_reach_anthropic_in_one_user_turn(
    client: openai.AsyncOpenAI, sim: Simulator
) -> None:
    calls: list[Any] = [
        {
            "id": f"toolu_{city}",
            "type": "function",
            "function": {"name": "get_weather", "arguments": orjson.dumps({"city": city}).decode()},
        }
        for city in ("Paris", "Rome")
    ]
    reply = await client.chat.completions.create(
        model="claude",
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "tool", "tool_call_id": "toolu_Paris", "content": "sunny"},
            {"role": "tool", "tool_call_id": "toolu_Rome", "content": "rainy"},
        ],
    )
    assert "rainy" in (reply.choices[0].message.content or "")
    turns = sim.requests[-1].body["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert [b["input"] for b in turns[1]["content"]] == [{"city": "Paris"}, {"city": "Rome"}]
    assert turns[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_Paris", "content": "sunny"},
        {"type": "tool_result", "tool_use_id": "toolu_Rome", "content": "rainy"},
    ]


async def test_several_choices_are_refused_before_any_call(
    client: openai.AsyncOpenAI, sim: Simulator
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "hi"}], n=2
        )
    body: Any = caught.value.body
    assert body["param"] == "n" and body["code"] == "unsupported_value"
    assert sim.requests == []


async def test_rate_limit_headers_teach_admission(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    sim = await make_sim(rpm=600, tpm=90_000)
    gw = await make_gateway(anthropic(sim.root_url))
    async with gw.client() as client:
        await client.chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "hi"}]
        )
    admission = gw.state.pipeline.router.group("claude").deployments[0].admission
    assert admission.requests is not None and admission.requests.limit == 600
    assert admission.tokens is not None and admission.tokens.limit == 90_000


async def test_a_429_keeps_anthropics_retry_after(
    client: openai.AsyncOpenAI, sim: Simulator
) -> None:
    sim.options = sim.options.model_copy(update={"error_rates": {429: 1.0}})
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.response.headers["retry-after"] == "1"
    assert "rate limited" in caught.value.message


async def test_a_broken_stream_ends_with_an_error_event(
    client: openai.AsyncOpenAI, sim: Simulator
) -> None:
    sim.options = sim.options.model_copy(update={"broken_stream_rate": 1.0, "seed": 3})

    async def read() -> None:
        stream = await client.chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "stream"}], stream=True
        )
        async for _ in stream:
            pass

    # Cut before the first content: a 502; after it: an error event in the stream.
    with pytest.raises(openai.APIError, match="upstream"):
        await read()


# -- billing, on Anthropic's documented answers --------------------------------------------

Replay = Callable[[bytes, str], Awaitable[str]]


@pytest.fixture
async def replay() -> AsyncIterator[Replay]:
    """An upstream that answers every POST /v1/messages with the given bytes."""
    runners: list[web.AppRunner] = []

    async def start(body: bytes, content_type: str) -> str:
        async def answer(request: web.Request) -> web.Response:
            return web.Response(body=body, headers={"Content-Type": content_type})

        app = web.Application()
        app.router.add_post("/v1/messages", answer)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


def billed(gw: Gateway, kind: str) -> int:
    return gw.state.metrics.tokens.get(("claude", "claude", kind), 0)


async def test_cache_writes_are_billed_as_prompt_tokens(
    make_gateway: GatewayFactory, replay: Replay
) -> None:
    gw = await make_gateway(anthropic(await replay(CACHED_ANSWER, "application/json")))
    async with gw.client() as client:
        reply = await client.chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "Analyze the major themes"}]
        )
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == 21 + 188086
    assert reply.usage.completion_tokens == 393
    details: Any = reply.usage.prompt_tokens_details
    assert details.cached_tokens == 0
    assert details.model_extra["cache_creation_tokens"] == 188086
    assert billed(gw, "prompt") == 188107 and billed(gw, "completion") == 393


async def test_cache_reads_in_a_stream_are_billed(
    make_gateway: GatewayFactory, replay: Replay
) -> None:
    sse = BASIC_SSE.replace(
        b'"usage": {"input_tokens": 25, "output_tokens": 1}',
        b'"usage": {"input_tokens": 25, "cache_read_input_tokens": 1200, "output_tokens": 1}',
    )
    gw = await make_gateway(anthropic(await replay(sse, "text/event-stream")))
    async with gw.client() as client:
        stream = await client.chat.completions.create(
            model="claude",
            messages=[{"role": "user", "content": "Hello"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        text, usage = "", None
        async for chunk in stream:
            text += "".join(c.delta.content or "" for c in chunk.choices)
            usage = chunk.usage or usage
    assert text == "Hello!"
    assert usage is not None and usage.prompt_tokens == 1225 and usage.completion_tokens == 15
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 1200
    assert billed(gw, "prompt") == 1225 and billed(gw, "cached") == 1200


async def test_a_refused_pool_key_is_swapped_for_the_next(
    make_gateway: GatewayFactory, sim: Simulator
) -> None:
    models = anthropic(sim.root_url)
    deployment = models[0]["deployments"][0]
    del deployment["api_key"]
    deployment["api_keys"] = ["sk-ant-revoked-0000000000", PROVIDER_KEY]
    gw = await make_gateway(models, retry={"retries": 1})
    async with gw.client() as client:
        for _ in range(2):
            reply = await client.chat.completions.create(
                model="claude", messages=[{"role": "user", "content": "hi"}]
            )
            assert reply.choices[0].message.content
    keys = [r.headers["x-api-key"] for r in sim.requests]
    # The revoked key was tried once, refused, and never sent again.
    assert keys == ["sk-ant-revoked-0000000000", PROVIDER_KEY, PROVIDER_KEY]

"""Chat completions through the gateway with the official openai SDK, simulator upstream."""

from __future__ import annotations

import openai

from lockgate.providers.simulator import Simulator
from tests.conftest import PROVIDER_KEY, Gateway


def _chat_requests(sim: Simulator) -> list[dict]:
    return [r.body for r in sim.requests if r.path.endswith("/chat/completions")]


async def test_non_streaming_reply_and_headers(
    client: openai.AsyncOpenAI, simulator: Simulator
) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Summarise: the cat sat on the mat."}],
        max_tokens=20,
    )
    reply = raw.parse()
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content
    assert reply.usage is not None and reply.usage.prompt_tokens > 0
    assert reply.usage.completion_tokens > 0
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.headers["x-lockgate-model-group"] == "gpt-4o-mini"
    assert raw.headers["x-lockgate-deployment"] == "openai/gpt-4o-mini"
    assert raw.headers["x-lockgate-provider"] == "openai"
    [sent] = _chat_requests(simulator)
    assert sent["model"] == "gpt-4o-mini"
    assert sent["max_tokens"] == 20
    [record] = [r for r in simulator.requests if r.path.endswith("/chat/completions")]
    assert record.headers["Authorization"] == f"Bearer {PROVIDER_KEY}"


async def test_client_request_id_is_kept(client: openai.AsyncOpenAI) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-request-id": "trace-abc-123"},
    )
    assert raw.headers["x-request-id"] == "trace-abc-123"


async def test_unknown_fields_and_options_pass_through(
    client: openai.AsyncOpenAI, simulator: Simulator
) -> None:
    reply = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Give me JSON"}],
        n=2,
        logprobs=True,
        response_format={"type": "json_object"},
        extra_body={"vendor_knob": {"depth": 3}, "top_k": 5},
    )
    assert len(reply.choices) == 2
    assert reply.choices[0].logprobs is not None
    [sent] = _chat_requests(simulator)
    assert sent["vendor_knob"] == {"depth": 3}
    assert sent["top_k"] == 5
    assert sent["n"] == 2
    assert sent["logprobs"] is True
    assert sent["response_format"] == {"type": "json_object"}


async def test_streaming_with_usage(client: openai.AsyncOpenAI, simulator: Simulator) -> None:
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Tell me a story"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, finish = "", None, None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert text
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens > 0 and usage.prompt_tokens > 0


async def test_streaming_without_usage_asks_upstream_but_hides_it(
    client: openai.AsyncOpenAI, simulator: Simulator, gateway: Gateway
) -> None:
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}], stream=True
    )
    chunks = [c async for c in stream]
    assert chunks
    assert all(c.choices for c in chunks), "the usage-only chunk must not reach this client"
    [sent] = _chat_requests(simulator)
    assert sent["stream_options"] == {"include_usage": True}
    metrics = gateway.state.metrics.render().decode()
    assert (
        'lockgate_tokens_total{deployment="openai/gpt-4o-mini",model="gpt-4o-mini",type="completion"}'
        in metrics
    )


async def test_tools_round_trip(client: openai.AsyncOpenAI, simulator: Simulator) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    messages: list = [{"role": "user", "content": "Weather in Paris?"}]
    first = await client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, tools=tools
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.function.name == "get_weather"
    assert "city" in call.function.arguments
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21}'},
    ]
    second = await client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, tools=tools
    )
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content
    sent = _chat_requests(simulator)[-1]
    assert sent["messages"][-1] == {
        "role": "tool",
        "tool_call_id": call.id,
        "content": '{"temp_c": 21}',
    }
    assert sent["tools"] == tools


async def test_streamed_tool_call(client: openai.AsyncOpenAI) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {
                    "type": "object",
                    "properties": {"q": {"type": "string"}},
                    "required": ["q"],
                },
            },
        }
    ]
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "search it"}],
        tools=tools,
        stream=True,
    )
    name, arguments, finish = "", "", None
    async for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                if call.function and call.function.name:
                    name = call.function.name
                if call.function and call.function.arguments:
                    arguments += call.function.arguments
            finish = choice.finish_reason or finish
    assert name == "lookup"
    assert '"q"' in arguments
    assert finish == "tool_calls"


async def test_embeddings_and_models(client: openai.AsyncOpenAI, simulator: Simulator) -> None:
    result = await client.embeddings.create(
        model="text-embedding-3-small", input=["alpha", "beta"], dimensions=64
    )
    assert [len(d.embedding) for d in result.data] == [64, 64]
    assert result.usage.prompt_tokens > 0
    [sent] = [r.body for r in simulator.requests if r.path.endswith("/embeddings")]
    assert sent["input"] == ["alpha", "beta"]
    models = await client.models.list()
    assert sorted(m.id for m in models.data) == ["gpt-4o-mini", "text-embedding-3-small"]

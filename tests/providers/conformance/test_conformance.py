"""One suite every provider adapter passes, end to end over HTTP: text, streaming, tools,
images, usage and each error kind, with the `openai` SDK parsing what lockgate returns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from lockgate.providers.simulator import Simulator
from tests.conftest import GatewayFactory, SimFactory
from tests.providers.conformance.cases import CASES, Case

MODEL = "sim-model"
TOOLS: list[Any] = [
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
PIXEL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8"
    "z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@dataclass
class Rig:
    case: Case
    sim: Simulator
    client: openai.AsyncOpenAI

    def upstream_bodies(self, stream: bool = False) -> list[Any]:
        path = self.case.chat_path(MODEL, stream)
        return [r.body for r in self.sim.requests if r.path == path]


@pytest.fixture(params=sorted(CASES))
async def rig(
    request: pytest.FixtureRequest, make_sim: SimFactory, make_gateway: GatewayFactory
) -> AsyncIterator[Rig]:
    case = CASES[request.param]
    sim = await make_sim(
        completion_tokens=12, context_window=4_000, content_filter_phrase="forbidden topic"
    )
    deployment = {**case.deployment(sim), "model": MODEL}
    gw = await make_gateway(
        [{"name": "m", "deployments": [deployment]}], retry={"retries": 0}, cooldown={}
    )
    async with gw.client() as client:
        yield Rig(case, sim, client)


async def test_text(rig: Rig) -> None:
    reply = await rig.client.chat.completions.create(
        model="m",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "hi"},
            {"role": "user", "content": "how are you?"},
        ],
        max_tokens=50,
    )
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == "m" or reply.model
    assert len(rig.upstream_bodies()) == 1


async def test_usage(rig: Rig) -> None:
    reply = await rig.client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "count me"}]
    )
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.completion_tokens == 12
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 12


async def test_truncated_answer(rig: Rig) -> None:
    reply = await rig.client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "long please"}], max_tokens=5
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 5


async def test_streaming(rig: Rig) -> None:
    stream = await rig.client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "stream it"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text = ""
    finish = None
    usage = None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert text
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == 12 and usage.prompt_tokens > 0


async def test_tools_round_trip(rig: Rig) -> None:
    first = await rig.client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls and message.tool_calls[0].function.name == "get_weather"
    call = message.tool_calls[0]
    assert "city" in call.function.arguments
    second = await rig.client.chat.completions.create(
        model="m",
        messages=[
            {"role": "user", "content": "weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": call.function.arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
        ],
        tools=TOOLS,
    )
    assert second.choices[0].finish_reason == "stop"
    assert "sunny" in (second.choices[0].message.content or "")


async def test_streamed_tool_call(rig: Rig) -> None:
    stream = await rig.client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        stream=True,
    )
    name = ""
    arguments = ""
    finish = None
    async for chunk in stream:
        for choice in chunk.choices:
            for tool_call in choice.delta.tool_calls or ():
                if tool_call.function is not None:
                    name += tool_call.function.name or ""
                    arguments += tool_call.function.arguments or ""
            finish = choice.finish_reason or finish
    assert name == "get_weather"
    assert "city" in arguments
    assert finish == "tool_calls"


async def test_image_input(rig: Rig) -> None:
    reply = await rig.client.chat.completions.create(
        model="m",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": PIXEL}},
                ],
            }
        ],
    )
    assert reply.choices[0].message.content
    # The image reached the upstream (in the provider's own encoding).
    assert "iVBORw0KGgo" in str(rig.upstream_bodies()[-1])


@pytest.mark.parametrize(
    ("fault", "status", "error"),
    [
        ("rate_limited", 429, openai.RateLimitError),
        ("overloaded", 503, openai.InternalServerError),
        ("server_error", 502, openai.InternalServerError),
        ("provider_auth", 502, openai.InternalServerError),
    ],
)
async def test_upstream_errors(
    rig: Rig, fault: str, status: int, error: type[openai.APIStatusError]
) -> None:
    upstream = {
        "rate_limited": 429,
        "overloaded": rig.case.overloaded_status,
        "server_error": 500,
        "provider_auth": rig.case.auth_status,
    }[fault]
    rig.sim.options = rig.sim.options.model_copy(update={"error_rates": {upstream: 1.0}})
    with pytest.raises(error) as caught:
        await rig.client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hello"}]
        )
    assert caught.value.status_code == status
    assert caught.value.response.headers["x-lockgate-deployment"]


async def test_context_window_exceeded(rig: Rig) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await rig.client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "word " * 6_000}]
        )
    body: Any = caught.value.body
    assert body["code"] == "context_length_exceeded"


async def test_content_filtered(rig: Rig) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await rig.client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "tell me a forbidden topic"}]
        )
    body: Any = caught.value.body
    assert body["code"] == "content_filter"


async def test_content_filtered_stream(rig: Rig) -> None:
    # A filtered prompt fails before the stream starts, whatever the provider's own way of
    # saying so (an error, or an answer that stops with a refusal).
    with pytest.raises(openai.BadRequestError) as caught:
        await rig.client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "tell me a forbidden topic"}],
            stream=True,
        )
    body: Any = caught.value.body
    assert body["code"] == "content_filter"

"""Azure OpenAI: deployment URLs, api-version, the api-key header and content filter results,
through the real gateway with the openai SDK, against the simulator and documented answers."""

from __future__ import annotations

from typing import Any

import aiohttp
import openai
import orjson
import pytest

from lockgate.config.loader import ConfigError, parse_config
from lockgate.providers.simulator import Simulator
from tests.conftest import PROVIDER_KEY, GatewayFactory, SimFactory
from tests.providers import replay as replays
from tests.providers.replay import Replay, ReplayFactory, example

make_replay = replays.make_replay

HELLO: Any = [{"role": "user", "content": "hello"}]


def azure(api_base: str, model: str = "gpt4o-prod", **extra: Any) -> dict[str, Any]:
    deployment = {"provider": "azure", "model": model, "api_base": api_base, **extra}
    return {"name": "m", "deployments": [{"api_key": PROVIDER_KEY, **deployment}]}


async def test_deployment_url_version_and_key(
    make_gateway: GatewayFactory, simulator: Simulator
) -> None:
    gw = await make_gateway([azure(simulator.root_url)])
    async with gw.client() as client:
        reply = await client.chat.completions.create(model="m", messages=HELLO)
    assert reply.choices[0].message.content
    [seen] = simulator.requests
    assert seen.path == "/openai/deployments/gpt4o-prod/chat/completions"
    assert seen.headers["api-key"] == PROVIDER_KEY
    assert "Authorization" not in seen.headers
    assert seen.body["model"] == "gpt4o-prod"


async def test_api_version_reaches_the_query(
    make_gateway: GatewayFactory, make_replay: ReplayFactory
) -> None:
    replay: Replay = await make_replay()
    replay.answer(example("azure/completion_filtered.json"))
    gw = await make_gateway(
        [azure(replay.url), {**azure(replay.url, api_version="2025-04-01-preview"), "name": "n"}]
    )
    async with gw.client() as client:
        await client.chat.completions.create(model="m", messages=HELLO)
        await client.chat.completions.create(model="n", messages=HELLO)
    default, chosen = (s.path_qs for s in replay.seen)
    assert default == "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
    assert chosen.endswith("?api-version=2025-04-01-preview")


async def test_v1_surface(make_gateway: GatewayFactory, simulator: Simulator) -> None:
    gw = await make_gateway([azure(simulator.root_url, api_version="v1")])
    async with gw.client() as client:
        await client.chat.completions.create(model="m", messages=HELLO)
    [seen] = simulator.requests
    assert seen.path == "/openai/v1/chat/completions"
    assert seen.body["model"] == "gpt4o-prod"


async def test_embeddings_use_the_deployment_url(
    make_gateway: GatewayFactory, simulator: Simulator
) -> None:
    gw = await make_gateway([azure(simulator.root_url, model="embed-small")])
    async with gw.client() as client:
        result = await client.embeddings.create(model="m", input=["a", "b"])
    assert len(result.data) == 2
    [seen] = simulator.requests
    assert seen.path == "/openai/deployments/embed-small/embeddings"


async def test_simulator_requires_api_version(simulator: Simulator) -> None:
    url = f"{simulator.root_url}/openai/deployments/d/chat/completions"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json={"messages": HELLO}, headers={"api-key": PROVIDER_KEY}) as resp,
    ):
        body = await resp.json()
    assert resp.status == 400
    assert body["error"]["code"] == "MissingApiVersionParameter"


async def test_filtered_prompt_is_content_filtered(
    make_sim: SimFactory, make_gateway: GatewayFactory
) -> None:
    sim = await make_sim(content_filter_phrase="forbidden")
    gw = await make_gateway([azure(sim.root_url)], retry={"retries": 0})
    async with gw.client() as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "a forbidden thing"}]
            )
    body: Any = caught.value.body
    assert body["code"] == "content_filter"
    assert sim.statuses[400] == 1  # no retry: the same prompt would be filtered again


async def test_documented_prompt_filter_error(
    make_gateway: GatewayFactory, make_replay: ReplayFactory
) -> None:
    replay: Replay = await make_replay()
    replay.answer(example("azure/prompt_filtered_error.json"), status=400)
    gw = await make_gateway([azure(replay.url)], retry={"retries": 0})
    async with gw.client() as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="m", messages=HELLO)
    body: Any = caught.value.body
    assert body["code"] == "content_filter"
    assert "content management policy" in body["message"]
    assert len(replay.seen) == 1


async def test_documented_filtered_completion_passes_through(
    make_gateway: GatewayFactory, make_replay: ReplayFactory
) -> None:
    replay: Replay = await make_replay()
    replay.answer(example("azure/completion_filtered.json"))
    gw = await make_gateway([azure(replay.url)])
    async with gw.client() as client:
        reply = await client.chat.completions.create(model="m", messages=HELLO)
    choice = reply.choices[0]
    assert choice.finish_reason == "content_filter"
    extra: Any = choice.model_extra
    assert extra["content_filter_results"]["violence"] == {"filtered": True, "severity": "medium"}
    assert reply.model_extra and reply.model_extra["prompt_filter_results"][0]["prompt_index"] == 0
    assert reply.usage is not None and reply.usage.total_tokens == 24


async def test_documented_filtered_stream(
    make_gateway: GatewayFactory, make_replay: ReplayFactory
) -> None:
    replay: Replay = await make_replay()
    replay.answer(example("azure/stream_filtered.txt"), **{"Content-Type": "text/event-stream"})
    gw = await make_gateway([azure(replay.url)])
    async with gw.client() as client:
        stream = await client.chat.completions.create(model="m", messages=HELLO, stream=True)
        chunks = [chunk async for chunk in stream]
    text = "".join(c.delta.content or "" for chunk in chunks for c in chunk.choices)
    finishes = [c.finish_reason for chunk in chunks for c in chunk.choices if c.finish_reason]
    assert text == "In the story, the knight"
    assert finishes == ["content_filter"]
    sent = orjson.loads(replay.seen[0].body)
    assert sent["stream_options"] == {"include_usage": True}  # billed from the usage chunk


@pytest.mark.parametrize(
    ("deployment", "problem"),
    [
        (
            {"provider": "azure", "model": "d", "api_key": "k"},
            "api_base: required for provider azure",
        ),
        (
            {"provider": "openai", "model": "d", "api_key": "k", "api_version": "2024-10-21"},
            "api_version: only used by provider azure",
        ),
    ],
)
def test_config_names_the_field(deployment: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"models": [{"name": "m", "deployments": [deployment]}]}, env={})
    assert problem in str(caught.value)


async def test_simulator_refuses_a_wrong_key_like_azure(simulator: Simulator) -> None:
    url = f"{simulator.root_url}/openai/deployments/d/chat/completions?api-version=2024-10-21"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json={"messages": HELLO}, headers={"api-key": "wrong"}) as resp,
    ):
        body = await resp.json()
    assert resp.status == 401
    assert body["error"]["code"] == "401"
    assert "invalid subscription key" in body["error"]["message"]

"""The Gemini adapter end to end: the openai SDK -> lockgate -> the simulator's Gemini wire,
asserting what reached the upstream, what the client sees and what was billed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from lockgate.providers.simulator import Simulator
from tests.conftest import (
    MASTER_KEY,
    PROVIDER_KEY,
    Gateway,
    GatewayFactory,
    SimFactory,
    wait_until,
)

MODEL = "gemini-2.5-flash"
CHAT = f"/v1beta/models/{MODEL}:generateContent"
STREAM = f"/v1beta/models/{MODEL}:streamGenerateContent"
EMBED = "/v1beta/models/text-embedding-004:batchEmbedContents"


def gemini(sim: Simulator, model: str = MODEL, **extra: Any) -> dict[str, Any]:
    return {
        "provider": "gemini",
        "model": model,
        "api_base": f"{sim.root_url}/v1beta",
        "api_key": PROVIDER_KEY,
        **extra,
    }


@dataclass
class Rig:
    sim: Simulator
    gateway: Gateway
    client: openai.AsyncOpenAI

    def bodies(self, path: str) -> list[Any]:
        return [r.body for r in self.sim.requests if r.path == path]


@pytest.fixture
async def rig(make_sim: SimFactory, make_gateway: GatewayFactory) -> AsyncIterator[Rig]:
    sim = await make_sim(completion_tokens=10, embedding_dim=8)
    gw = await make_gateway(
        [
            {"name": "g", "deployments": [gemini(sim)]},
            {"name": "e", "deployments": [gemini(sim, "text-embedding-004")]},
        ],
        retry={"retries": 0},
        cooldown={},
    )
    async with gw.client() as client:
        yield Rig(sim, gw, client)


async def test_the_upstream_gets_a_gemini_request(rig: Rig) -> None:
    reply = await rig.client.chat.completions.create(
        model="g",
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": "hello"},
        ],
        max_tokens=40,
        temperature=0.2,
        top_p=0.9,
        stop=["END"],
        seed=3,
    )
    assert reply.choices[0].message.content
    record = next(r for r in rig.sim.requests if r.path == CHAT)
    assert record.headers["x-goog-api-key"] == PROVIDER_KEY
    assert "authorization" not in {name.lower() for name in record.headers}
    assert record.body == {
        "contents": [{"role": "user", "parts": [{"text": "hello"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {
            "maxOutputTokens": 40,
            "temperature": 0.2,
            "topP": 0.9,
            "stopSequences": ["END"],
            "seed": 3,
        },
    }


async def test_several_candidates(rig: Rig) -> None:
    reply = await rig.client.chat.completions.create(
        model="g", messages=[{"role": "user", "content": "two please"}], n=2
    )
    assert [c.index for c in reply.choices] == [0, 1]
    assert all(c.message.content and c.finish_reason == "stop" for c in reply.choices)
    assert reply.usage is not None and reply.usage.completion_tokens == 20
    stream = await rig.client.chat.completions.create(
        model="g", messages=[{"role": "user", "content": "two please"}], n=2, stream=True
    )
    texts = {0: "", 1: ""}
    finishes: dict[int, str] = {}
    async for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert texts[0] == reply.choices[0].message.content
    assert texts[1] == reply.choices[1].message.content
    assert finishes == {0: "stop", 1: "stop"}


async def test_structured_output_reaches_gemini_as_a_schema_it_accepts(rig: Rig) -> None:
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"city": {"type": "string"}, "days": {"type": ["integer", "null"]}},
        "required": ["city", "days"],
    }
    reply = await rig.client.chat.completions.create(
        model="g",
        messages=[{"role": "user", "content": "forecast"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "forecast", "strict": True, "schema": schema},
        },
    )
    assert set(orjson.loads(reply.choices[0].message.content or "")) == {"city", "days"}
    config = rig.bodies(CHAT)[-1]["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert "additionalProperties" not in config["responseSchema"]
    assert config["responseSchema"]["properties"]["days"] == {"type": "integer", "nullable": True}


async def test_embeddings(rig: Rig) -> None:
    # The SDK asks for base64 and decodes it: lockgate encodes Gemini's floats.
    result = await rig.client.embeddings.create(model="e", input=["first text", "second"])
    assert [d.index for d in result.data] == [0, 1]
    assert all(len(d.embedding) == 8 for d in result.data)
    assert result.usage.prompt_tokens == (len("first text") + 3) // 4 + (len("second") + 3) // 4
    floats = await rig.client.embeddings.create(
        model="e", input="first text", encoding_format="float"
    )
    assert floats.data[0].embedding == pytest.approx(result.data[0].embedding, rel=1e-6)
    short = await rig.client.embeddings.create(model="e", input="first text", dimensions=4)
    assert len(short.data[0].embedding) == 4
    sent = rig.bodies(EMBED)
    assert sent[0]["requests"][1] == {
        "model": "models/text-embedding-004",
        "content": {"parts": [{"text": "second"}]},
    }
    assert "outputDimensionality" not in sent[1]["requests"][0]
    assert sent[2]["requests"][0]["outputDimensionality"] == 4


async def test_a_refused_key_is_a_provider_auth_error(
    make_sim: SimFactory, make_gateway: GatewayFactory
) -> None:
    sim = await make_sim()
    gw = await make_gateway(
        [{"name": "g", "deployments": [gemini(sim, api_key="AIzaSyWrongKey0123456789abcdefgh")]}],
        retry={"retries": 0},
        cooldown={},
    )
    async with gw.client() as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(
                model="g", messages=[{"role": "user", "content": "hi"}]
            )
    assert caught.value.status_code == 502
    body: Any = caught.value.body
    assert body["code"] == "provider_auth_failed"
    assert "API key not valid" in body["message"]
    assert "AIzaSyWrongKey" not in caught.value.response.text
    assert sim.statuses[400] == 1  # Gemini says 400 API_KEY_INVALID, not 401


async def test_a_rate_limit_carries_gemini_retry_delay(
    make_sim: SimFactory, make_gateway: GatewayFactory
) -> None:
    sim = await make_sim(rpm=1)
    gw = await make_gateway(
        [{"name": "g", "deployments": [gemini(sim)]}], retry={"retries": 0}, cooldown={}
    )
    async with gw.client() as client:
        await client.chat.completions.create(model="g", messages=[{"role": "user", "content": "a"}])
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(
                model="g", messages=[{"role": "user", "content": "b"}]
            )
    # The simulator sends no retry-after header on this wire: the wait came from RetryInfo.
    assert int(caught.value.response.headers["retry-after"]) >= 1
    assert sim.statuses[429] == 1


async def test_a_blocked_prompt_while_streaming(
    make_sim: SimFactory, make_gateway: GatewayFactory
) -> None:
    sim = await make_sim(content_filter_phrase="forbidden topic")
    gw = await make_gateway(
        [{"name": "g", "deployments": [gemini(sim)]}], retry={"retries": 0}, cooldown={}
    )
    async with gw.client() as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(
                model="g",
                messages=[{"role": "user", "content": "a forbidden topic"}],
                stream=True,
            )
    body: Any = caught.value.body
    assert body["code"] == "content_filter" and "SAFETY" in body["message"]
    assert sim.statuses[200] == 1  # Gemini blocks with a 200 and promptFeedback


async def test_what_gemini_cannot_take_is_refused_before_any_call(rig: Rig) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await rig.client.chat.completions.create(
            model="g",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "https://example.com/photo"}}
                    ],
                }
            ],
        )
    body: Any = caught.value.body
    assert "media type" in body["message"]
    assert not rig.bodies(CHAT)


async def test_streamed_usage_is_billed_even_unasked(rig: Rig) -> None:
    stream = await rig.client.chat.completions.create(
        model="g", messages=[{"role": "user", "content": "stream"}], stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert all(chunk.usage is None for chunk in chunks)  # hidden from a client that did not ask
    assert chunks[0].choices[0].delta.role == "assistant"
    tokens = rig.gateway.state.metrics.tokens
    billed = {kind: n for (model, _, kind), n in tokens.items() if model == "g"}
    assert billed["completion"] == 10
    assert billed["prompt"] > 0


async def test_a_pool_key_gemini_refuses_is_taken_out(
    make_sim: SimFactory, make_gateway: GatewayFactory
) -> None:
    sim = await make_sim()
    keys = ["AIzaSyRefusedKey0123456789abcdefgh", PROVIDER_KEY]
    deployment = {**gemini(sim), "api_keys": keys}
    del deployment["api_key"]
    gw = await make_gateway(
        [{"name": "g", "deployments": [deployment]}], retry={"retries": 2}, cooldown={}
    )
    async with gw.client() as client:
        for _ in range(3):
            reply = await client.chat.completions.create(
                model="g", messages=[{"role": "user", "content": "hi"}]
            )
            assert reply.choices[0].message.content
    used = [r.headers["x-goog-api-key"] for r in sim.requests if r.path == CHAT]
    # The refused key was tried once (400 API_KEY_INVALID), then never again.
    assert used.count(keys[0]) == 1
    assert used.count(PROVIDER_KEY) == 3


async def test_a_client_hanging_up_cancels_the_gemini_stream(
    make_sim: SimFactory, make_gateway: GatewayFactory
) -> None:
    sim = await make_sim(inter_token="50ms", completion_tokens=60)
    gw = await make_gateway(
        [{"name": "g", "deployments": [gemini(sim)]}], retry={"retries": 0}, cooldown={}
    )
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    body = {"model": "g", "messages": [{"role": "user", "content": "a long story"}]}
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            f"{gw.url}/v1/chat/completions", json={**body, "stream": True}, headers=headers
        )
        assert resp.status == 200
        assert (await resp.content.readline()).startswith(b"data: ")
        resp.close()  # hang up after the first event
    await wait_until(lambda: sim.disconnects == 1)
    await wait_until(lambda: gw.state.metrics.in_flight == 0)

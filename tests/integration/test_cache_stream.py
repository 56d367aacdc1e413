"""Streams and the cache: a completed stream is stored once and replayed as a proper SSE
stream that the openai SDK parses; streamed and plain requests serve each other."""

from __future__ import annotations

import aiohttp
import openai
import orjson
import pytest

from tests.conftest import MASTER_KEY, GatewayFactory, SimFactory, chats
from tests.integration.cache_helpers import ASK, cached_gateway


async def _stream(client, **extra):  # type: ignore[no-untyped-def]
    raw = await client.chat.completions.with_raw_response.create(
        model="m", messages=ASK, temperature=0, stream=True, **extra
    )
    chunks = [chunk async for chunk in raw.parse()]
    return raw.headers, chunks


def _text(chunks) -> str:  # type: ignore[no-untyped-def]
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


async def test_a_stream_is_replayed_to_a_streaming_client(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    gw, upstream = await cached_gateway(make_gateway, make_sim, sim={"completion_tokens": 40})
    options = {"stream_options": {"include_usage": True}}
    async with gw.client() as client:
        first_headers, first = await _stream(client, **options)
        second_headers, second = await _stream(client, **options)
        _, plain = await _stream(client)
    assert chats(upstream) == 1
    assert first_headers["x-lockgate-cache"] == "miss"
    assert second_headers["x-lockgate-cache"] == "hit"
    assert second_headers["content-type"].startswith("text/event-stream")
    assert _text(second) == _text(first) and len(_text(first).split()) == 40
    # Same chunk shapes: an id, role first, a finish reason, then the usage-only chunk.
    assert {c.object for c in second} == {"chat.completion.chunk"}
    assert {c.id for c in second} == {first[0].id}
    assert second[0].choices[0].delta.role == "assistant"
    assert second[-2].choices[0].finish_reason == "stop"
    assert second[-1].choices == [] and second[-1].usage == first[-1].usage
    # A client that did not ask for usage does not get the usage-only chunk.
    assert all(c.choices for c in plain) and _text(plain) == _text(first)


async def test_replay_ends_with_done(make_gateway: GatewayFactory, make_sim: SimFactory) -> None:
    gw, _ = await cached_gateway(make_gateway, make_sim)
    body = {"model": "m", "messages": ASK, "temperature": 0, "stream": True}
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            async with http.post(
                f"{gw.url}/v1/chat/completions", json=body, headers=headers
            ) as resp:
                events = (await resp.text()).strip().split("\n\n")
    assert resp.headers["x-lockgate-cache"] == "hit"
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: {") for e in events[:-1])
    assert orjson.loads(events[0][6:])["choices"][0]["delta"]["role"] == "assistant"


async def test_streamed_and_plain_requests_serve_each_other(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    gw, upstream = await cached_gateway(make_gateway, make_sim)
    async with gw.client() as client:
        _, streamed = await _stream(client)
        raw = await client.chat.completions.with_raw_response.create(
            model="m", messages=ASK, temperature=0
        )
        assert raw.headers["x-lockgate-cache"] == "hit"
        reply = raw.parse()
        assert reply.choices[0].message.content == _text(streamed)
        assert reply.choices[0].finish_reason == "stop"
        assert reply.usage is not None and reply.usage.completion_tokens > 0

        other = [{"role": "user", "content": "Name three rivers."}]
        plain = await client.chat.completions.create(model="m", messages=other, temperature=0)
        raw_stream = await client.chat.completions.with_raw_response.create(
            model="m", messages=other, temperature=0, stream=True
        )
        assert raw_stream.headers["x-lockgate-cache"] == "hit"
        text = "".join([c.choices[0].delta.content or "" async for c in raw_stream.parse()])
    assert text == plain.choices[0].message.content
    assert chats(upstream) == 2


async def test_a_broken_or_truncated_stream_is_not_stored(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    gw, upstream = await cached_gateway(
        make_gateway, make_sim, sim={"broken_stream_rate": 1.0, "completion_tokens": 30}
    )
    async with gw.client() as client:
        for _ in range(2):
            raw = await client.chat.completions.with_raw_response.create(
                model="m", messages=ASK, temperature=0, stream=True
            )
            with pytest.raises(openai.APIError):  # the gateway's error event, raised
                async for _chunk in raw.parse():
                    pass
    assert chats(upstream) >= 2
    assert gw.state.pipeline.cache.metrics.writes == {}  # type: ignore[union-attr]

    gw2, upstream2 = await cached_gateway(make_gateway, make_sim)
    async with gw2.client() as client:
        for _ in range(2):
            _, chunks = await _stream(client, max_tokens=3)
            assert chunks[-1].choices[0].finish_reason == "length"
    assert chats(upstream2) == 2

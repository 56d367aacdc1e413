"""Request coalescing: identical concurrent requests share one upstream call; streams are
fanned out to every waiter. Counted at the upstream."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.conftest import MASTER_KEY, GatewayFactory, SimFactory, chats, dep, wait_until

ASK = [{"role": "user", "content": "Summarise the plot of Hamlet."}]


async def _gateway(make_gateway: GatewayFactory, make_sim: SimFactory, **sim: object) -> tuple:
    upstream = await make_sim(**sim)
    gw = await make_gateway([{"name": "m", "deployments": [dep(upstream, "a")]}])
    return gw, upstream


async def test_identical_deterministic_requests_share_one_call(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    gw, upstream = await _gateway(make_gateway, make_sim, latency="300ms")
    async with gw.client() as client:
        raws = await asyncio.gather(
            *(
                client.chat.completions.with_raw_response.create(
                    model="m", messages=ASK, temperature=0
                )
                for _ in range(5)
            )
        )
    replies = [r.parse() for r in raws]
    assert chats(upstream) == 1
    assert len({r.choices[0].message.content for r in replies}) == 1
    assert sum(r.headers.get("x-lockgate-coalesced") == "true" for r in raws) == 4
    assert len({r.headers["x-request-id"] for r in raws}) == 5
    assert gw.state.metrics.coalesced == {"m": 4}


async def test_sampled_requests_do_not_share_unless_asked(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    gw, upstream = await _gateway(make_gateway, make_sim, latency="200ms")
    async with gw.client() as client:

        async def burst(**extra: object) -> None:
            await asyncio.gather(
                *(
                    client.chat.completions.create(
                        model="m", messages=ASK, temperature=0.7, **extra
                    )
                    for _ in range(3)
                )
            )

        await burst()
        assert chats(upstream) == 3
        await burst(extra_headers={"x-lockgate-coalesce": "on"})
        assert chats(upstream) == 4


async def _stream_text(gw: object, *, hang_up_after: int | None = None) -> tuple[str, bool]:
    body = {"model": "m", "messages": ASK, "temperature": 0, "stream": True}
    text, done = "", False
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            f"{gw.url}/v1/chat/completions",  # type: ignore[attr-defined]
            json=body,
            headers={"Authorization": f"Bearer {MASTER_KEY}"},
        )
        events = 0
        async for line in resp.content:
            if line.startswith(b"data: [DONE]"):
                done = True
            elif line.startswith(b"data: "):
                events += 1
                text += line.decode()
                if hang_up_after is not None and events >= hang_up_after:
                    resp.close()
                    break
    return text, done


async def test_stream_fans_out_to_every_waiter_including_late_ones(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    gw, upstream = await _gateway(make_gateway, make_sim, inter_token="30ms", stream_chunks=12)

    async def late() -> tuple[str, bool]:
        await asyncio.sleep(0.15)  # joins mid-stream: replayed from the start
        return await _stream_text(gw)

    results = await asyncio.gather(_stream_text(gw), _stream_text(gw), late())
    assert chats(upstream) == 1
    assert all(done for _, done in results)
    texts = {text.replace("chatcmpl", "") for text, _ in results}
    assert len(texts) == 1  # every waiter got the same chunks


async def test_leader_hanging_up_does_not_cut_the_others(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    gw, upstream = await _gateway(make_gateway, make_sim, inter_token="30ms", stream_chunks=10)
    _, (text, done) = await asyncio.gather(_stream_text(gw, hang_up_after=2), _stream_text(gw))
    assert done and text
    assert chats(upstream) == 1
    assert upstream.disconnects == 0


async def test_everyone_hanging_up_cancels_the_shared_call(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    gw, upstream = await _gateway(make_gateway, make_sim, inter_token="50ms", stream_chunks=40)
    await asyncio.gather(_stream_text(gw, hang_up_after=2), _stream_text(gw, hang_up_after=2))
    await wait_until(lambda: upstream.disconnects == 1)
    assert len(gw.state.pipeline.coalescer) == 0

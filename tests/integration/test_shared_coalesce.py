"""Coalescing across two replicas through a real Redis: identical in-flight requests on
either replica share one upstream call; errors are shared too; a leader that goes away
lets the others call upstream themselves."""

from __future__ import annotations

import asyncio

import openai
import pytest

from tests.conftest import GatewayFactory, SimFactory, chats, dep
from tests.integration.replica_pair import replica_pair

ASK = [{"role": "user", "content": "Summarise the plot of Hamlet."}]


async def test_identical_requests_on_two_replicas_share_one_call(
    make_gateway: GatewayFactory, make_sim: SimFactory, redis_url: str, redis_prefix: str
) -> None:
    upstream = await make_sim(latency="400ms")
    models = [{"name": "m", "deployments": [dep(upstream, "a")]}]
    a, b = await replica_pair(make_gateway, models, redis_url, redis_prefix)
    async with a.client() as ca, b.client() as cb:
        raws = await asyncio.gather(
            *(
                client.chat.completions.with_raw_response.create(
                    model="m", messages=ASK, temperature=0
                )
                for client in (ca, cb)
                for _ in range(5)
            )
        )
    replies = [r.parse() for r in raws]
    assert chats(upstream) == 1
    assert len({r.choices[0].message.content for r in replies}) == 1
    assert len({r.id for r in replies}) == 1
    assert sum(r.headers.get("x-lockgate-coalesced") == "true" for r in raws) == 9
    assert {r.headers["x-lockgate-deployment"] for r in raws} == {"a"}
    outcomes = [g.state.replicas.coalescer.outcomes for g in (a, b)]  # type: ignore[union-attr]
    assert sorted(o.get("led", 0) for o in outcomes) == [0, 1]
    assert sorted(o.get("followed", 0) for o in outcomes) == [0, 1]
    # Each replica counts the requests another call answered, its own and the replica's.
    assert sum(g.state.metrics.coalesced.get("m", 0) for g in (a, b)) == 9


async def test_an_error_is_shared_like_an_answer(
    make_gateway: GatewayFactory, make_sim: SimFactory, redis_url: str, redis_prefix: str
) -> None:
    upstream = await make_sim(latency="300ms", context_window=5)
    models = [{"name": "m", "deployments": [dep(upstream, "a")]}]
    a, b = await replica_pair(make_gateway, models, redis_url, redis_prefix)
    async with a.client() as ca, b.client() as cb:
        results = await asyncio.gather(
            *(
                client.chat.completions.create(model="m", messages=ASK, temperature=0)
                for client in (ca, cb, ca, cb)
            ),
            return_exceptions=True,
        )
    assert chats(upstream) == 1
    assert all(isinstance(r, openai.BadRequestError) for r in results)
    for error in results:
        assert isinstance(error, openai.BadRequestError)
        assert isinstance(error.body, dict) and error.body["code"] == "context_length_exceeded"


async def test_different_requests_do_not_share(
    make_gateway: GatewayFactory, make_sim: SimFactory, redis_url: str, redis_prefix: str
) -> None:
    upstream = await make_sim(latency="200ms")
    models = [{"name": "m", "deployments": [dep(upstream, "a")]}]
    a, b = await replica_pair(make_gateway, models, redis_url, redis_prefix)
    async with a.client() as ca, b.client() as cb:
        await asyncio.gather(
            ca.chat.completions.create(model="m", messages=ASK, temperature=0),
            cb.chat.completions.create(model="m", messages=ASK, temperature=0, max_tokens=7),
            cb.chat.completions.create(model="m", messages=ASK, temperature=0.5),
        )
    assert chats(upstream) == 3


async def test_followers_call_upstream_when_the_leader_goes_away(
    make_gateway: GatewayFactory, make_sim: SimFactory, redis_url: str, redis_prefix: str
) -> None:
    upstream = await make_sim(latency="600ms")
    models = [{"name": "m", "deployments": [dep(upstream, "a")]}]
    a, b = await replica_pair(make_gateway, models, redis_url, redis_prefix)
    async with a.client(timeout=0.3) as impatient, b.client() as cb:
        first = asyncio.ensure_future(
            impatient.chat.completions.create(model="m", messages=ASK, temperature=0)
        )
        await asyncio.sleep(0.1)
        follower = await cb.chat.completions.with_raw_response.create(
            model="m", messages=ASK, temperature=0
        )
        with pytest.raises(openai.APITimeoutError):
            await first
    assert follower.parse().choices[0].message.content
    assert follower.headers.get("x-lockgate-coalesced") is None  # it called upstream itself
    assert b.state.replicas is not None
    assert b.state.replicas.coalescer.outcomes.get("gone") == 1

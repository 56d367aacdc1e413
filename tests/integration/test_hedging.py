"""Hedging: a second attempt races a slow first one; the first answer wins, the loser is
cancelled upstream. Observed at the upstreams."""

from __future__ import annotations

import time
from typing import Any

from tests.conftest import HELLO, GatewayFactory, SimFactory, chats, dep, wait_until


def _group(slow: Any, fast: Any, **extra: Any) -> dict[str, Any]:
    # The slow deployment is (almost) always picked first.
    deployments = [{**dep(slow, "slow"), "weight": 10_000}, dep(fast, "fast")]
    return {"name": "m", "deployments": deployments, "hedge_after": 0.1, **extra}


async def test_hedge_wins_and_the_slow_call_is_cancelled(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    slow, fast = await make_sim(latency="1500ms"), await make_sim()
    gw = await make_gateway([_group(slow, fast)])
    async with gw.client() as client:
        started = time.perf_counter()
        raw = await client.chat.completions.with_raw_response.create(model="m", messages=HELLO)
        took = time.perf_counter() - started
    assert took < 1.0
    assert raw.headers["x-lockgate-hedged"] == "true"
    assert raw.headers["x-lockgate-deployment"] == "fast"
    assert raw.headers["x-lockgate-attempts"] == "2"
    assert (chats(slow), chats(fast)) == (1, 1)
    await wait_until(lambda: slow.disconnects == 1)  # the loser was hung up on


async def test_streams_hedge_on_the_first_token(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    slow, fast = await make_sim(ttft="1500ms"), await make_sim()
    gw = await make_gateway([_group(slow, fast)])
    async with gw.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="m", messages=HELLO, stream=True
        )
        chunks = [c async for c in raw.parse()]
    assert raw.headers["x-lockgate-deployment"] == "fast"
    assert chunks[-1].choices[0].finish_reason == "stop"
    await wait_until(lambda: slow.disconnects == 1)


async def test_no_hedge_when_the_first_answers_in_time(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    first, other = await make_sim(latency="20ms"), await make_sim()
    gw = await make_gateway([_group(first, other)])
    async with gw.client() as client:
        for _ in range(3):
            raw = await client.chat.completions.with_raw_response.create(model="m", messages=HELLO)
            assert "x-lockgate-hedged" not in raw.headers
    assert chats(other) == 0


async def test_hedges_spend_the_retry_budget(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    slow, fast = await make_sim(latency="400ms"), await make_sim()
    gw = await make_gateway(
        [_group(slow, fast)], retry={"budget_ratio": 0.0, "budget_min_retries": 0}
    )
    async with gw.client() as client:
        raw = await client.chat.completions.with_raw_response.create(model="m", messages=HELLO)
    assert raw.headers["x-lockgate-deployment"] == "slow"  # no budget: no hedge
    assert chats(fast) == 0

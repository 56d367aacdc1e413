"""Routing strategies, observed at the upstreams through the HTTP app."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import HELLO, GatewayFactory, SimFactory, chats, dep


async def _send(gw: Any, n: int, *, concurrent: bool = False) -> None:
    async with gw.client() as client:
        calls = [client.chat.completions.create(model="m", messages=HELLO) for _ in range(n)]
        if concurrent:
            await asyncio.gather(*calls)
        else:
            for call in calls:
                await call


async def test_ordered_uses_the_first_ready_deployment(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    first, second = await make_sim(), await make_sim()
    gw = await make_gateway(
        [{"name": "m", "strategy": "ordered",
          "deployments": [dep(first, "a"), dep(second, "b")]}]
    )  # fmt: skip
    await _send(gw, 6)
    assert (chats(first), chats(second)) == (6, 0)


async def test_cost_picks_the_cheapest(make_gateway: GatewayFactory, make_sim: SimFactory) -> None:
    dear, cheap = await make_sim(), await make_sim()
    gw = await make_gateway(
        [
            {
                "name": "m",
                "strategy": "cost",
                "deployments": [
                    {**dep(dear, "a"), "prices": {"input": 2.5, "output": 10}},
                    {**dep(cheap, "b"), "prices": {"input": 0.15, "output": 0.6}},
                ],
            }
        ]
    )
    await _send(gw, 6)
    assert (chats(dear), chats(cheap)) == (0, 6)


async def test_latency_moves_traffic_to_the_faster(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    slow, fast = await make_sim(latency="150ms"), await make_sim()
    gw = await make_gateway(
        [{"name": "m", "strategy": "latency", "deployments": [dep(slow, "a"), dep(fast, "b")]}]
    )
    await _send(gw, 10)
    assert chats(slow) == 1  # measured once, then always the slower of the two choices
    assert chats(fast) == 9


async def test_least_busy_spreads_concurrent_calls(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    one, two = await make_sim(latency="300ms"), await make_sim(latency="300ms")
    gw = await make_gateway(
        [{"name": "m", "strategy": "least-busy", "deployments": [dep(one, "a"), dep(two, "b")]}]
    )
    await _send(gw, 6, concurrent=True)
    assert (chats(one), chats(two)) == (3, 3)

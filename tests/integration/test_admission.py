"""Upstream admission control: queue instead of collecting 429s; priority; max wait;
deadlines. Observed at the upstream."""

from __future__ import annotations

import asyncio

import openai
import pytest

from tests.conftest import HELLO, GatewayFactory, SimFactory, chats, dep


def _ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def test_concurrency_limit_queues_instead_of_overloading(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    sim = await make_sim(latency="300ms")
    gw = await make_gateway(
        [{"name": "m", "deployments": [{**dep(sim, "a"), "max_concurrency": 2}]}]
    )
    async with gw.client() as client:
        replies = await asyncio.gather(
            *(client.chat.completions.create(model="m", messages=HELLO) for _ in range(6))
        )
    assert all(r.choices[0].message.content for r in replies)
    arrivals = sorted(r.time for r in sim.requests)
    # Two at a time: the third and fifth calls left only as earlier ones finished.
    assert arrivals[2] - arrivals[0] >= 0.25
    assert arrivals[4] - arrivals[0] >= 0.55


async def test_higher_priority_leaves_the_queue_first(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    sim = await make_sim(latency="200ms")
    gw = await make_gateway(
        [{"name": "m", "deployments": [{**dep(sim, "a"), "max_concurrency": 1}]}]
    )
    async with gw.client() as client:

        async def ask(text: str, priority: int, after: float) -> None:
            await asyncio.sleep(after)
            await client.chat.completions.create(
                model="m",
                messages=_ask(text),
                extra_headers={"x-lockgate-priority": str(priority)},
            )

        await asyncio.gather(ask("first", 0, 0), ask("low", 0, 0.05), ask("high", 9, 0.1))
    order = [r.body["messages"][0]["content"] for r in sim.requests]
    assert order == ["first", "high", "low"]


async def test_wait_beyond_max_wait_is_a_429_without_a_call(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    sim = await make_sim(latency="1000ms")
    gw = await make_gateway(
        [{"name": "m", "deployments": [{**dep(sim, "a"), "max_concurrency": 1}]}]
    )
    async with gw.client() as client:
        busy = asyncio.ensure_future(client.chat.completions.create(model="m", messages=HELLO))
        await asyncio.sleep(0.1)
        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(
                model="m", messages=HELLO, extra_headers={"x-lockgate-max-wait": "0.2"}
            )
        await busy
    assert isinstance(info.value.body, dict)
    assert info.value.body["code"] == "upstream_capacity_exceeded"
    assert int(info.value.response.headers["retry-after"]) >= 1
    assert chats(sim) == 1


async def test_full_queue_falls_back(make_gateway: GatewayFactory, make_sim: SimFactory) -> None:
    sim, backup = await make_sim(latency="1000ms"), await make_sim()
    gw = await make_gateway(
        [
            {
                "name": "m",
                "deployments": [{**dep(sim, "a"), "max_concurrency": 1}],
                "fallbacks": ["n"],
            },
            {"name": "n", "deployments": [dep(backup, "b")]},
        ]
    )
    async with gw.client() as client:
        busy = asyncio.ensure_future(client.chat.completions.create(model="m", messages=HELLO))
        await asyncio.sleep(0.1)
        raw = await client.chat.completions.with_raw_response.create(
            model="m", messages=HELLO, extra_headers={"x-lockgate-max-wait": "0.1"}
        )
        await busy
    assert raw.headers["x-lockgate-model-group"] == "n"
    assert (chats(sim), chats(backup)) == (1, 1)


async def test_no_retry_past_the_deadline(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    limited = await make_sim(error_rates={429: 1.0})  # each 429 asks for 1 s
    gw = await make_gateway([{"name": "m", "deployments": [dep(limited, "a")]}])
    async with gw.client() as client:
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(
                model="m", messages=HELLO, extra_headers={"x-lockgate-timeout": "0.5"}
            )
    assert chats(limited) == 1  # waiting 1 s to retry would pass the 0.5 s deadline


async def test_bad_control_header_is_400(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    sim = await make_sim()
    gw = await make_gateway([{"name": "m", "deployments": [dep(sim, "a")]}])
    async with gw.client() as client:
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(
                model="m", messages=HELLO, extra_headers={"x-lockgate-max-wait": "soon"}
            )
    assert isinstance(info.value.body, dict)
    assert info.value.body["param"] == "x-lockgate-max-wait"
    assert chats(sim) == 0


async def test_upstream_429_waits_in_the_queue_without_a_retry(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    """Nothing is known of the limit at first, so both calls go out and one collects a
    429: it waits out the provider's pause in the queue and succeeds, though no retry is
    allowed at all (no extra attempts, an empty retry budget)."""
    # one request a second; answers take long enough that both calls leave before any
    sim = await make_sim(rpm=60, burst_seconds=1, latency="300ms")
    gw = await make_gateway(
        [{"name": "m", "deployments": [dep(sim, "a")]}],
        retry={"retries": 0, "budget_ratio": 0, "budget_min_retries": 0},
    )
    async with gw.client() as client:
        replies = await asyncio.gather(
            *(
                client.chat.completions.with_raw_response.create(model="m", messages=HELLO)
                for _ in range(2)
            )
        )
    assert all(r.parse().choices[0].message.content for r in replies)
    assert sim.statuses[429] == 1 and sim.statuses[200] == 2
    arrivals = sorted(r.time for r in sim.requests)
    assert arrivals[-1] - arrivals[0] >= 0.9  # sent again only once the provider had room
    assert sorted(r.headers["x-lockgate-attempts"] for r in replies) == ["1", "2"]


async def test_queued_request_leaves_a_deployment_whose_circuit_opened(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    """The third request queues behind the first at `a`; the first times out and opens
    a's circuit, so the queued one is sent to `b` rather than to a failing deployment."""
    slow, spare = await make_sim(latency="3000ms"), await make_sim(latency="1000ms")
    gw = await make_gateway(
        [
            {
                "name": "m",
                "strategy": "ordered",
                "deployments": [
                    {**dep(slow, "a"), "max_concurrency": 1, "timeout": 1.0},
                    {**dep(spare, "b"), "max_concurrency": 1},
                ],
            }
        ],
        cooldown={"consecutive_failures": 1},
        sections={"admission": {"spill_wait": 60}},  # queue where routed; no early spill
    )
    async with gw.client() as client:

        async def ask(after: float) -> str:
            await asyncio.sleep(after)
            raw = await client.chat.completions.with_raw_response.create(model="m", messages=HELLO)
            return raw.headers["x-lockgate-deployment"]

        served = await asyncio.gather(ask(0), ask(0.1), ask(0.2))
    assert served == ["b", "b", "b"]  # the first after its timeout on a, as its retry
    assert (chats(slow), chats(spare)) == (1, 3)


@pytest.mark.parametrize(("spill_wait", "fourth"), [(0.5, "b"), (60, "a")])
async def test_a_long_queue_spills_to_a_shorter_one(
    make_gateway: GatewayFactory, make_sim: SimFactory, spill_wait: float, fourth: str
) -> None:
    """Both deployments are full when the fourth request comes: `a` would take about a
    call's latency (one slot), `b` half that (two slots). Past `spill_wait` it queues at
    `b`; under it, it stays where it was routed, however long `max_wait` is."""
    first, second = await make_sim(latency="1000ms"), await make_sim(latency="1000ms")
    gw = await make_gateway(
        [
            {
                "name": "m",
                "strategy": "ordered",
                "deployments": [
                    {**dep(first, "a"), "max_concurrency": 1},
                    {**dep(second, "b"), "max_concurrency": 2},
                ],
            }
        ],
        sections={"admission": {"max_wait": 60, "spill_wait": spill_wait}},
    )
    async with gw.client() as client:

        async def ask(after: float) -> str:
            await asyncio.sleep(after)
            raw = await client.chat.completions.with_raw_response.create(model="m", messages=HELLO)
            return raw.headers["x-lockgate-deployment"]

        served = await asyncio.gather(ask(0), ask(0.1), ask(0.2), ask(0.3))
    assert served == ["a", "b", "b", fourth]

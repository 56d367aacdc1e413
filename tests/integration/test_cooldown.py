"""Circuit breakers per deployment, driven through the HTTP app with the simulators."""

from __future__ import annotations

import asyncio

import openai
import pytest

from lockgate.providers.simulator import SimulatorOptions
from tests.conftest import HELLO, PROVIDER_KEY, GatewayFactory, SimFactory, chats, dep


async def test_failing_deployment_leaves_rotation(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    broken, healthy = await make_sim(error_rates={500: 1.0}), await make_sim()
    gw = await make_gateway(
        # Ordered: every request tries the broken one first until it leaves rotation (with
        # the default weighted choice, 12 requests picked it fewer than twice 0.3% of runs).
        [
            {
                "name": "m",
                "strategy": "ordered",
                "deployments": [dep(broken, "a"), dep(healthy, "b")],
            }
        ],
        cooldown={"consecutive_failures": 2, "cooldown": 30},
    )
    async with gw.client() as client:
        for _ in range(12):
            reply = await client.chat.completions.create(model="m", messages=HELLO)
            assert reply.choices[0].message.content
    assert chats(broken) == 2  # then it was out of rotation
    assert chats(healthy) == 12
    assert gw.state.metrics.circuit_state["a"] == "open"


async def test_429_with_retry_after_opens_at_once_then_one_probe(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    limited, other = await make_sim(error_rates={429: 1.0}), await make_sim()
    gw = await make_gateway(
        [
            {
                "name": "m",
                "deployments": [{**dep(limited, "a"), "weight": 1000}, dep(other, "b")],
            }
        ]
    )
    async with gw.client() as client:
        for _ in range(5):
            await client.chat.completions.create(model="m", messages=HELLO)
        assert chats(limited) == 1  # its 429 asked for 1 s: nothing more was sent to it
        await asyncio.sleep(1.1)
        await client.chat.completions.create(model="m", messages=HELLO)
    assert chats(limited) == 2  # one half-open probe
    assert chats(other) == 6


async def test_everything_cooling_down_is_503_without_a_call(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    broken = await make_sim(error_rates={500: 1.0})
    gw = await make_gateway(
        [{"name": "m", "deployments": [dep(broken, "a")], "retries": 0}],
        cooldown={"consecutive_failures": 1, "cooldown": 30},
    )
    async with gw.client() as client:
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="m", messages=HELLO)
        with pytest.raises(openai.APIStatusError) as info:
            await client.chat.completions.create(model="m", messages=HELLO)
    assert info.value.status_code == 503
    assert isinstance(info.value.body, dict)
    assert info.value.body["code"] == "deployments_cooling_down"
    assert 28 <= int(info.value.response.headers["retry-after"]) <= 30
    assert chats(broken) == 1


async def test_cooling_down_group_goes_to_its_fallback(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    broken, backup = await make_sim(error_rates={500: 1.0}), await make_sim()
    gw = await make_gateway(
        [
            {"name": "m", "deployments": [dep(broken, "a")], "retries": 0, "fallbacks": ["n"]},
            {"name": "n", "deployments": [dep(backup, "b")]},
        ],
        cooldown={"consecutive_failures": 1, "cooldown": 30},
    )
    async with gw.client() as client:
        for _ in range(3):
            raw = await client.chat.completions.with_raw_response.create(model="m", messages=HELLO)
            assert raw.headers["x-lockgate-model-group"] == "n"
    assert (chats(broken), chats(backup)) == (1, 3)


async def test_half_open_probe_closes_the_circuit(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    flaky = await make_sim(error_rates={500: 1.0})
    gw = await make_gateway(
        [{"name": "m", "deployments": [dep(flaky, "a")], "retries": 0}],
        cooldown={"consecutive_failures": 1, "cooldown": 0.3},
        retry={"max_cooldown_wait": 0},  # fail fast while it cools down
    )
    async with gw.client() as client:
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="m", messages=HELLO)
        flaky.options = SimulatorOptions(api_key=PROVIDER_KEY)  # the provider recovers
        with pytest.raises(openai.APIStatusError):  # still cooling down
            await client.chat.completions.create(model="m", messages=HELLO)
        await asyncio.sleep(0.35)
        reply = await client.chat.completions.create(model="m", messages=HELLO)
        assert reply.choices[0].message.content
    transitions = gw.state.metrics.circuit_transitions
    assert transitions == {("a", "open"): 1, ("a", "half_open"): 1, ("a", "closed"): 1}
    assert chats(flaky) == 2


async def test_a_brief_cooldown_is_waited_out(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    flaky = await make_sim(error_rates={500: 1.0})
    gw = await make_gateway(
        [{"name": "m", "deployments": [dep(flaky, "a")], "retries": 0}],
        cooldown={"consecutive_failures": 1, "cooldown": 0.3},
    )
    async with gw.client() as client:
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="m", messages=HELLO)
        flaky.options = SimulatorOptions(api_key=PROVIDER_KEY)
        started = asyncio.get_running_loop().time()
        reply = await client.chat.completions.create(model="m", messages=HELLO)
        waited = asyncio.get_running_loop().time() - started
    assert reply.choices[0].message.content
    assert waited >= 0.25  # it waited for the 0.3 s cooldown, then probed
    assert chats(flaky) == 2

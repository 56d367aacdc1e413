"""Cooldowns shared by two replicas through a real Redis: one replica's open circuit keeps
the other away; one replica probes; a successful probe brings the deployment back for all."""

from __future__ import annotations

import asyncio

from tests.conftest import HELLO, GatewayFactory, SimFactory, chats, dep, wait_until
from tests.integration.replica_pair import replica_pair

OUTAGE_S = 4.0


async def test_a_circuit_opened_by_one_replica_keeps_the_other_away(
    make_gateway: GatewayFactory, make_sim: SimFactory, redis_url: str, redis_prefix: str
) -> None:
    broken, healthy = await make_sim(error_rates={500: 1.0}), await make_sim()
    models = [
        {"name": "m", "deployments": [{**dep(broken, "a"), "weight": 1000}, dep(healthy, "b")]}
    ]
    a, b = await replica_pair(
        make_gateway, models, redis_url, redis_prefix,
        cooldown={"consecutive_failures": 2, "cooldown": 30},
    )  # fmt: skip
    async with a.client() as client:
        for _ in range(2):  # each fails on `a`, then is retried on `b`
            await client.chat.completions.create(model="m", messages=HELLO)
    assert chats(broken) == 2
    await wait_until(lambda: b.state.metrics.circuit_state.get("a") == "open")
    async with b.client() as client:
        for _ in range(5):
            raw = await client.chat.completions.with_raw_response.create(model="m", messages=HELLO)
            assert raw.headers["x-lockgate-deployment"] == "b"
            assert raw.headers["x-lockgate-attempts"] == "1"
    assert chats(broken) == 2  # replica B never sent it anything
    assert b.state.replicas is not None
    assert b.state.replicas.link.received["open"] >= 1
    assert a.state.replicas is not None
    assert a.state.replicas.link.sent["open"] >= 1


async def test_one_replica_probes_when_the_cooldown_ends(
    make_gateway: GatewayFactory, make_sim: SimFactory, redis_url: str, redis_prefix: str
) -> None:
    limited, other = await make_sim(error_rates={429: 1.0}), await make_sim()
    models = [
        {"name": "m", "deployments": [{**dep(limited, "a"), "weight": 1000}, dep(other, "b")]}
    ]
    a, b = await replica_pair(make_gateway, models, redis_url, redis_prefix)
    async with a.client() as client:
        await client.chat.completions.create(model="m", messages=HELLO)
    assert chats(limited) == 1  # its 429 asked for 1 s: the circuit opened on A, then on B
    await wait_until(lambda: b.state.metrics.circuit_state.get("a") == "open")
    await asyncio.sleep(1.3)  # the cooldown is over on both replicas
    async with a.client() as ca, b.client() as cb:
        for _ in range(4):
            await asyncio.gather(
                ca.chat.completions.create(model="m", messages=HELLO),
                cb.chat.completions.create(model="m", messages=HELLO),
            )
    assert chats(limited) == 2  # one half-open probe, from one replica, not one from each
    assert chats(other) == 1 + 8


async def test_a_successful_probe_closes_the_circuit_on_every_replica(
    make_gateway: GatewayFactory, make_sim: SimFactory, redis_url: str, redis_prefix: str
) -> None:
    # The outage runs from the simulator's start: long enough that the first request
    # meets it however slowly the two replicas start on a loaded machine.
    loop = asyncio.get_running_loop()
    outage_ends = loop.time() + OUTAGE_S
    flaky, other = await make_sim(outages=[(0.0, OUTAGE_S)]), await make_sim()
    models = [{"name": "m", "deployments": [{**dep(flaky, "a"), "weight": 1000}, dep(other, "b")]}]
    a, b = await replica_pair(
        make_gateway, models, redis_url, redis_prefix,
        cooldown={"consecutive_failures": 1, "cooldown": 1},
    )  # fmt: skip
    async with a.client() as client:
        await client.chat.completions.create(model="m", messages=HELLO)  # 503 on a, then b
    await wait_until(lambda: b.state.metrics.circuit_state.get("a") == "open")
    # the outage (it began at most a moment after outage_ends was taken) and the 1 s
    # cooldown are over
    await asyncio.sleep(max(1.2, outage_ends - loop.time() + 0.3))

    async def probe_until_closed() -> None:
        async with a.client() as ca, b.client() as cb:
            while "closed" not in (
                a.state.metrics.circuit_state["a"],
                b.state.metrics.circuit_state["a"],
            ):
                await asyncio.gather(
                    ca.chat.completions.create(model="m", messages=HELLO),
                    cb.chat.completions.create(model="m", messages=HELLO),
                )

    await asyncio.wait_for(probe_until_closed(), 10)
    await wait_until(lambda: all(g.state.metrics.circuit_state["a"] == "closed" for g in (a, b)))
    async with b.client() as client:
        raw = await client.chat.completions.with_raw_response.create(model="m", messages=HELLO)
    assert raw.headers["x-lockgate-deployment"] == "a"

"""Provider key pools: rotation, a refused key taken out, a rate-limited key rested."""

from __future__ import annotations

import logging

import openai
import pytest

from lockgate.providers.keys import fingerprint
from tests.conftest import HELLO, PROVIDER_KEY, GatewayFactory, SimFactory, dep

BAD_KEY = "sk-revoked-provider-key-0000000000"


def _keys_used(sim: object) -> list[str]:
    return [r.headers["Authorization"].removeprefix("Bearer ") for r in sim.requests]  # type: ignore[attr-defined]


async def test_refused_key_is_taken_out_and_reported_by_fingerprint(
    make_gateway: GatewayFactory, make_sim: SimFactory, caplog: pytest.LogCaptureFixture
) -> None:
    sim = await make_sim()  # accepts PROVIDER_KEY only
    deployment = {**dep(sim, "a"), "api_key": None, "api_keys": [BAD_KEY, PROVIDER_KEY]}
    gw = await make_gateway([{"name": "m", "deployments": [deployment]}])
    caplog.set_level(logging.WARNING, logger="lockgate.keys")
    async with gw.client() as client:
        for _ in range(5):
            reply = await client.chat.completions.create(model="m", messages=HELLO)
            assert reply.choices[0].message.content
    used = _keys_used(sim)
    assert used.count(BAD_KEY) == 1  # refused once, never sent again
    assert used.count(PROVIDER_KEY) == 5
    assert sim.statuses[401] == 1
    assert gw.state.metrics.provider_keys == {("a", "disabled"): 1}
    assert fingerprint(BAD_KEY) in caplog.text
    assert BAD_KEY not in caplog.text


async def test_rate_limited_key_rests_and_the_next_attempt_uses_another(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    sim = await make_sim(api_key=None, error_rates={429: 1.0})
    keys = ["sk-pool-key-one-111111111111", "sk-pool-key-two-222222222222"]
    deployment = {**dep(sim, "a"), "api_key": None, "api_keys": keys}
    gw = await make_gateway([{"name": "m", "deployments": [deployment], "retries": 1}])
    async with gw.client() as client:
        with pytest.raises(openai.RateLimitError):
            # no time to wait out a 429 in the queue: the retry goes to the other key
            await client.chat.completions.create(
                model="m", messages=HELLO, extra_headers={"x-lockgate-max-wait": "0.5"}
            )
    first, second = _keys_used(sim)
    assert {first, second} == set(keys)  # the retry went out at once on the other key
    assert gw.state.metrics.provider_keys == {("a", "rested"): 2}


async def test_all_keys_refused_falls_back(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    sim, backup = await make_sim(), await make_sim()
    deployment = {
        **dep(sim, "a"),
        "api_key": None,
        "api_keys": [BAD_KEY, "sk-another-bad-key-99999999999"],
    }
    gw = await make_gateway(
        [
            {"name": "m", "deployments": [deployment], "fallbacks": ["n"]},
            {"name": "n", "deployments": [dep(backup, "b")]},
        ]
    )
    async with gw.client() as client:
        raw = await client.chat.completions.with_raw_response.create(model="m", messages=HELLO)
    assert raw.headers["x-lockgate-model-group"] == "n"
    assert sim.statuses[401] == 2

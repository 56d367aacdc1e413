"""Retries and fallbacks, driven through the HTTP app; the simulators inject the faults and
count what reached each upstream."""

from __future__ import annotations

import itertools
from typing import Any

import openai
import pytest

from lockgate.core.retry import MAX_REQUEUES
from tests.conftest import HELLO, GatewayFactory, SimFactory, chats, dep, wait_until


async def test_retry_moves_to_a_healthy_deployment(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    broken, healthy = await make_sim(error_rates={500: 1.0}), await make_sim()
    gw = await make_gateway([{"name": "m", "deployments": [dep(broken, "a"), dep(healthy, "b")]}])
    async with gw.client() as client:
        for _ in range(4):
            raw = await client.chat.completions.with_raw_response.create(model="m", messages=HELLO)
            assert raw.headers["x-lockgate-deployment"] in {"a", "b"}
            assert raw.parse().choices[0].message.content
            if raw.headers["x-lockgate-attempts"] == "2":
                assert raw.headers["x-lockgate-deployment"] == "b"
    # Never more than one attempt on the broken deployment per request.
    assert chats(healthy) == 4
    assert chats(broken) <= 4


async def test_retries_exhausted_lists_every_attempt(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    broken = await make_sim(error_rates={500: 1.0})
    gw = await make_gateway([{"name": "m", "deployments": [dep(broken, "a")]}])
    async with gw.client() as client:
        with pytest.raises(openai.APIStatusError) as info:
            await client.chat.completions.create(model="m", messages=HELLO)
    assert info.value.status_code == 502
    assert info.value.response.headers["x-lockgate-attempts"] == "3"
    assert "All 3 attempts failed" in info.value.message
    assert info.value.message.count("[m via a]") == 3
    assert chats(broken) == 3


async def test_not_retryable_is_tried_once(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    small = await make_sim(context_window=20)
    gw = await make_gateway([{"name": "m", "deployments": [dep(small, "a")]}])
    async with gw.client() as client:
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "word " * 200}]
            )
    assert isinstance(info.value.body, dict)
    assert info.value.body["code"] == "context_length_exceeded"
    assert chats(small) == 1


async def test_fallback_model_after_retries(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    down, backup = await make_sim(error_rates={503: 1.0}), await make_sim()
    gw = await make_gateway(
        [
            {"name": "primary", "deployments": [dep(down, "p")], "fallbacks": ["secondary"]},
            {"name": "secondary", "deployments": [dep(backup, "s", "gpt-4o")]},
        ]
    )
    async with gw.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="primary", messages=HELLO
        )
    assert raw.parse().model == "gpt-4o"
    assert raw.headers["x-lockgate-fallback"] == "true"
    assert raw.headers["x-lockgate-model-group"] == "secondary"
    assert raw.headers["x-lockgate-attempts"] == "4"
    assert (chats(down), chats(backup)) == (3, 1)
    assert gw.state.metrics.fallbacks == {("primary", "secondary"): 1}


async def test_request_fallbacks_override_and_never_reach_upstream(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    down, backup = await make_sim(error_rates={500: 1.0}), await make_sim()
    gw = await make_gateway(
        [
            {"name": "primary", "deployments": [dep(down, "p")], "retries": 0},
            {"name": "secondary", "deployments": [dep(backup, "s")]},
        ]
    )
    async with gw.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="primary", messages=HELLO, extra_body={"fallbacks": ["secondary"]}
        )
        assert raw.headers["x-lockgate-fallback"] == "true"
        with pytest.raises(openai.NotFoundError) as info:
            await client.chat.completions.create(
                model="primary", messages=HELLO, extra_body={"fallbacks": ["nope"]}
            )
    assert isinstance(info.value.body, dict) and info.value.body["param"] == "fallbacks"
    assert chats(down) == 1  # the unknown fallback was refused before any call
    for record in down.requests + backup.requests:
        assert "fallbacks" not in record.body


@pytest.mark.parametrize(
    ("fault", "route"),
    [
        ({"context_window": 20}, "context_window_fallbacks"),
        ({"content_filter_phrase": "forbidden"}, "content_policy_fallbacks"),
    ],
)
async def test_context_and_policy_fallbacks_skip_retries(
    make_gateway: GatewayFactory, make_sim: SimFactory, fault: dict[str, Any], route: str
) -> None:
    strict, other = await make_sim(**fault), await make_sim()
    gw = await make_gateway(
        [
            {"name": "m", "deployments": [dep(strict, "a")], route: ["big"]},
            {"name": "big", "deployments": [dep(other, "b")]},
        ]
    )
    prompt = "forbidden " * 100
    async with gw.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": prompt}]
        )
    assert raw.headers["x-lockgate-model-group"] == "big"
    assert (chats(strict), chats(other)) == (1, 1)


async def test_retry_after_is_honoured(make_gateway: GatewayFactory, make_sim: SimFactory) -> None:
    limited = await make_sim(error_rates={429: 1.0})  # each 429 asks for 1000 ms
    gw = await make_gateway(
        [{"name": "m", "deployments": [dep(limited, "a")], "retries": 1}],
        retry={"backoff_base": 0.0},
    )
    async with gw.client() as client:
        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(model="m", messages=HELLO)
    # Each 429 is waited out in the queue twice (MAX_REQUEUES), then once as the retry;
    # every call waited for what the provider asked.
    times = [r.time for r in limited.requests]
    assert len(times) == 1 + MAX_REQUEUES + 1
    assert all(b - a >= 0.95 for a, b in itertools.pairwise(times))
    assert info.value.response.headers["x-lockgate-attempts"] == str(len(times))
    assert info.value.response.headers["retry-after"] == "1"


async def test_retry_budget_caps_retries(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    broken = await make_sim(error_rates={500: 1.0})
    gw = await make_gateway(
        [{"name": "m", "deployments": [dep(broken, "a")]}],
        retry={"budget_ratio": 0.0, "budget_min_retries": 2},
        cooldown={"consecutive_failures": 100, "min_calls": 100},  # the budget alone decides
    )
    async with gw.client() as client:
        for _ in range(3):
            with pytest.raises(openai.APIStatusError):
                await client.chat.completions.create(model="m", messages=HELLO)
    # 3 requests + only the 2 retries the budget allowed, not 3 x 3.
    assert chats(broken) == 5


async def test_spent_retry_budget_still_falls_back(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    """An outage with the budget spent: no retry on the group, but the request goes to its
    fallback model (one call, not a retry) instead of failing."""
    down, backup = await make_sim(outages=[(0.0, 60.0)]), await make_sim()
    gw = await make_gateway(
        [
            {"name": "m", "deployments": [dep(down, "a")], "fallbacks": ["n"]},
            {"name": "n", "deployments": [dep(backup, "b")]},
        ],
        retry={"budget_ratio": 0.0, "budget_min_retries": 0},
        cooldown={"consecutive_failures": 100, "min_calls": 100},  # every request tries a
    )
    async with gw.client() as client:
        for _ in range(3):
            raw = await client.chat.completions.with_raw_response.create(model="m", messages=HELLO)
            assert raw.headers["x-lockgate-model-group"] == "n"
            assert raw.headers["x-lockgate-fallback"] == "true"
    assert (chats(down), chats(backup)) == (3, 3)


async def test_stream_retries_before_the_first_byte(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    down, backup = await make_sim(error_rates={500: 1.0}), await make_sim()
    gw = await make_gateway(
        [
            {"name": "m", "deployments": [dep(down, "a")], "fallbacks": ["n"], "retries": 0},
            {"name": "n", "deployments": [dep(backup, "b")]},
        ]
    )
    async with gw.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="m", messages=HELLO, stream=True
        )
        assert raw.headers["x-lockgate-deployment"] == "b"
        chunks = [c async for c in raw.parse()]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert (chats(down), chats(backup)) == (1, 1)


async def test_slow_first_token_falls_back_before_anything_is_sent(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    slow, fast = await make_sim(ttft="2000ms"), await make_sim()
    gw = await make_gateway(
        [
            {
                "name": "m",
                "deployments": [{**dep(slow, "a"), "first_token_timeout": 0.2}],
                "fallbacks": ["n"],
                "retries": 0,
            },
            {"name": "n", "deployments": [dep(fast, "b")]},
        ]
    )
    async with gw.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="m", messages=HELLO, stream=True
        )
        chunks = [c async for c in raw.parse()]
    assert raw.headers["x-lockgate-deployment"] == "b"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert (chats(slow), chats(fast)) == (1, 1)
    await wait_until(lambda: slow.disconnects == 1)  # hung up on, not left to run


async def test_stream_that_goes_silent_ends_with_an_error_event(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    stalling = await make_sim(inter_token="1500ms", stream_chunks=4)
    gw = await make_gateway(
        [{"name": "m", "deployments": [{**dep(stalling, "a"), "idle_timeout": 0.3}]}]
    )
    received: list[object] = []

    async def consume() -> None:
        async with gw.client() as client:
            stream = await client.chat.completions.create(model="m", messages=HELLO, stream=True)
            async for chunk in stream:
                received.append(chunk)

    with pytest.raises(openai.APIError) as info:
        await consume()
    assert received  # the first chunk arrived, then the upstream went silent
    assert "went silent for 0.3 s" in info.value.message

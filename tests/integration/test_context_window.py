"""Context-window checks before sending: a prompt that cannot fit is never paid for."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import GatewayFactory, SimFactory, chats, dep

LONG = "lockgate counts the tokens of this sentence before it sends anything. " * 20


async def test_a_prompt_too_long_goes_to_the_larger_model_without_a_call(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    small, big = await make_sim(), await make_sim()
    gw = await make_gateway(
        [
            {
                "name": "small",
                "deployments": [{**dep(small, "small"), "context_window": 120}],
                "context_window_fallbacks": ["big"],
            },
            {"name": "big", "deployments": [dep(big, "big")]},
        ]
    )
    async with gw.client() as client:
        short = await client.chat.completions.with_raw_response.create(
            model="small", messages=[{"role": "user", "content": "hi"}], max_tokens=20
        )
        assert short.headers["x-lockgate-deployment"] == "small"
        long = await client.chat.completions.with_raw_response.create(
            model="small", messages=[{"role": "user", "content": LONG}], max_tokens=20
        )
        assert long.headers["x-lockgate-deployment"] == "big"
        assert long.headers["x-lockgate-fallback"] == "true"
        # max_tokens counts too: a short prompt asking for more than the window holds.
        greedy = await client.chat.completions.with_raw_response.create(
            model="small", messages=[{"role": "user", "content": "hi"}], max_tokens=500
        )
        assert greedy.headers["x-lockgate-deployment"] == "big"
        stream = await client.chat.completions.create(
            model="small", messages=[{"role": "user", "content": LONG}], stream=True
        )
        assert [c async for c in stream]
    assert chats(small) == 1  # only the short prompt was sent there
    assert chats(big) == 3


async def test_without_a_fallback_the_client_gets_context_length_exceeded(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    small = await make_sim()
    gw = await make_gateway(
        [{"name": "small", "deployments": [{**dep(small, "small"), "context_window": 120}]}]
    )
    async with gw.client() as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(
                model="small", messages=[{"role": "user", "content": LONG}]
            )
    body = caught.value.body
    assert isinstance(body, dict) and body["code"] == "context_length_exceeded"
    assert "maximum context length is 120 tokens" in body["message"]
    assert chats(small) == 0


async def test_tpm_admission_reserves_the_counted_prompt_not_an_estimate(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    # 4,000 spaces: a thousand tokens by the four-bytes estimate, a few dozen by tiktoken.
    # With 600 tokens a minute, one estimated request takes the whole minute's budget.
    sim = await make_sim()
    gw = await make_gateway(
        [{"name": "m", "deployments": [{**dep(sim, "a"), "tpm": 600}]}],
        retry={"retries": 0},
    )
    async with gw.client() as client:
        for _ in range(3):  # by the estimate, the second would wait a minute for room
            reply = await client.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": " " * 4000}],
                max_tokens=10,
                extra_headers={"x-lockgate-max-wait": "1"},
            )
            assert reply.choices[0].message.content
    assert chats(sim) == 3

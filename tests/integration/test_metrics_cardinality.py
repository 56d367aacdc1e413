"""Metric labels stay bounded: traffic from many distinct keys and users (and unknown
model names) adds no series, and no key or user id shows up as a label value."""

from __future__ import annotations

import aiohttp
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lockgate.core.auth import Authenticator
from lockgate.core.types import Principal
from tests.conftest import MASTER_KEY, Gateway, GatewayFactory, SimFactory, dep

HELLO = [{"role": "user", "content": "hello"}]


class ManyKeys(Authenticator):
    """Every `sk-user-N` credential is its own key and user."""

    async def authenticate(self, credential: str | None) -> Principal:
        if credential and credential.startswith("sk-user-"):
            n = credential.removeprefix("sk-user-")
            return Principal(key_id=f"key-{n}", user_id=f"user-{n}", team_id=f"team-{n}")
        return await super().authenticate(credential)


async def _series(gw: Gateway) -> tuple[str, set[tuple[str, tuple[tuple[str, str], ...]]]]:
    async with aiohttp.ClientSession() as http, http.get(f"{gw.url}/metrics") as resp:
        text = await resp.text()
    series = {
        (s.name, tuple(sorted(s.labels.items())))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return text, series


async def _traffic(gw: Gateway, users: range) -> None:
    for n in users:
        async with gw.client(api_key=f"sk-user-{n}") as client:
            await client.chat.completions.create(model="m", messages=HELLO)
            stream = await client.chat.completions.create(model="m", messages=HELLO, stream=True)
            async for _ in stream:
                pass
            with pytest.raises(openai.NotFoundError):
                await client.chat.completions.create(model=f"made-up-{n}", messages=HELLO)


async def test_series_count_is_bounded_under_many_keys(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    sim = await make_sim()
    gw = await make_gateway([{"name": "m", "deployments": [dep(sim, "d")]}])
    gw.state.pipeline.auth = ManyKeys(MASTER_KEY)

    await _traffic(gw, range(2))
    _, before = await _series(gw)
    await _traffic(gw, range(2, 60))
    text, after = await _series(gw)

    assert after == before  # same series; only values moved
    names = {name for name, _ in after}
    assert "gen_ai_client_operation_duration_seconds_count" in names
    assert "gen_ai_client_token_usage_count" in names
    values = {value for _, labels in after for _, value in labels}
    for n in range(60):
        for ident in (f"key-{n}", f"user-{n}", f"team-{n}", f"sk-user-{n}", f"made-up-{n}"):
            assert ident not in values
            assert f'"{ident}"' not in text
    assert MASTER_KEY not in text

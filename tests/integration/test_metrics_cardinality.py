"""Metric labels stay bounded: traffic from many distinct keys and users (and unknown
model names) adds no series, and no key or user id shows up as a label value."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import MASTER_KEY, Gateway, GatewayFactory, SimFactory, dep
from tests.governance.helpers import admin, new_key, sqlite

HELLO = [{"role": "user", "content": "hello"}]


async def _series(gw: Gateway) -> tuple[str, set[tuple[str, tuple[tuple[str, str], ...]]]]:
    async with aiohttp.ClientSession() as http, http.get(f"{gw.url}/metrics") as resp:
        text = await resp.text()
    series = {
        (s.name, tuple(sorted(s.labels.items())))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return text, series


async def _keys(gw: Gateway, users: range) -> dict[int, tuple[str, str]]:
    """Real virtual keys, each of its own user and team: (key, key id) by number."""
    out = {}
    for n in users:
        await admin(gw, "POST", "/admin/teams", {"id": f"team-{n}", "name": f"team {n}"})
        await admin(gw, "POST", "/admin/users", {"id": f"user-{n}", "team_id": f"team-{n}"})
        out[n] = await new_key(gw, user_id=f"user-{n}", team_id=f"team-{n}")
    return out


async def _traffic(gw: Gateway, keys: dict[int, tuple[str, str]], users: range) -> None:
    for n in users:
        async with gw.client(api_key=keys[n][0]) as client:
            await client.chat.completions.create(model="m", messages=HELLO)
            stream = await client.chat.completions.create(model="m", messages=HELLO, stream=True)
            async for _ in stream:
                pass
            with pytest.raises(openai.NotFoundError):
                await client.chat.completions.create(model=f"made-up-{n}", messages=HELLO)


async def test_series_count_is_bounded_under_many_keys(
    make_gateway: GatewayFactory, make_sim: SimFactory, tmp_path: Path
) -> None:
    sim = await make_sim()
    gw = await make_gateway(
        [{"name": "m", "deployments": [dep(sim, "d")]}], sections={"database": sqlite(tmp_path)}
    )
    keys = await _keys(gw, range(60))

    await _traffic(gw, keys, range(2))
    _, before = await _series(gw)
    await _traffic(gw, keys, range(2, 60))
    text, after = await _series(gw)

    assert after == before  # same series; only values moved
    names = {name for name, _ in after}
    assert "gen_ai_client_operation_duration_seconds_count" in names
    assert "gen_ai_client_token_usage_count" in names
    values = {value for _, labels in after for _, value in labels}
    for n in range(60):
        key, key_id = keys[n]
        for ident in (key_id, f"user-{n}", f"team-{n}", key, f"made-up-{n}"):
            assert ident not in values
            assert f'"{ident}"' not in text
    assert MASTER_KEY not in text

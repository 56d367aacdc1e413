"""Tenant safety: an answer is served only within the team (or key) that caused it,
unless the cache is configured shared."""

from __future__ import annotations

from pathlib import Path

from lockgate.core.types import Principal
from lockgate.features.cache.keys import request_digest, scope_of
from tests.conftest import GatewayFactory, SimFactory, chats
from tests.integration.cache_helpers import ASK, cached_gateway, database, team_keys


def test_scope_is_the_team_else_the_key() -> None:
    a1 = Principal(key_id="k1", team_id="team-a")
    a2 = Principal(key_id="k2", team_id="team-a")
    b = Principal(key_id="k3", team_id="team-b")
    solo = Principal(key_id="k4")
    assert scope_of(a1, shared=False) == scope_of(a2, shared=False) == "team:team-a"
    assert scope_of(b, shared=False) == "team:team-b"
    assert scope_of(solo, shared=False) == "key:k4"
    assert scope_of(a1, shared=True) == scope_of(b, shared=True)
    body = {"model": "m", "messages": ASK, "temperature": 0}
    digests = {request_digest(scope_of(p, False), "default", "m", body) for p in (a1, b, solo)}
    assert len(digests) == 3


async def _ask(gw, key: str) -> str:  # type: ignore[no-untyped-def]
    async with gw.client(api_key=key) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="m", messages=ASK, temperature=0
        )
    return str(raw.headers["x-lockgate-cache"])


async def test_two_teams_never_share_an_answer(
    make_gateway: GatewayFactory, make_sim: SimFactory, tmp_path: Path
) -> None:
    gw, upstream = await cached_gateway(make_gateway, make_sim, sections=database(tmp_path))
    keys = await team_keys(gw)
    assert await _ask(gw, keys["sk-team-a-1"]) == "miss"
    assert await _ask(gw, keys["sk-team-b-1"]) == "miss"
    assert await _ask(gw, keys["sk-solo"]) == "miss"
    assert await _ask(gw, keys["sk-team-a-2"]) == "hit"  # the same team
    assert await _ask(gw, keys["sk-team-b-1"]) == "hit"
    assert chats(upstream) == 3


async def test_a_shared_cache_serves_every_caller(
    make_gateway: GatewayFactory, make_sim: SimFactory, tmp_path: Path
) -> None:
    gw, upstream = await cached_gateway(
        make_gateway, make_sim, cache={"scope": "shared"}, sections=database(tmp_path)
    )
    keys = await team_keys(gw)
    assert await _ask(gw, keys["sk-team-a-1"]) == "miss"
    assert await _ask(gw, keys["sk-team-b-1"]) == "hit"
    async with gw.client() as master:
        raw = await master.chat.completions.with_raw_response.create(
            model="m", messages=ASK, temperature=0
        )
    assert raw.headers["x-lockgate-cache"] == "hit"
    assert chats(upstream) == 1
    assert gw.state.pipeline.cache.metrics.lookups[("m", "shared", "hit")] == 2  # type: ignore[union-attr]

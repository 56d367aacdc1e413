"""Helpers for the cache tests: a cached gateway on a simulator, and keys in two teams."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import Gateway, GatewayFactory, SimFactory, dep
from tests.governance.helpers import admin, new_key, sqlite

ASK = [{"role": "user", "content": "Summarise the plot of Hamlet."}]
PRICES = {"input": 1.0, "output": 2.0}  # USD per million tokens


async def cached_gateway(
    make_gateway: GatewayFactory,
    make_sim: SimFactory,
    *,
    cache: dict[str, Any] | None = None,
    model_cache: dict[str, Any] | None = None,
    sections: dict[str, Any] | None = None,
    sim: dict[str, Any] | None = None,
) -> tuple[Gateway, Any]:
    upstream = await make_sim(**(sim or {}))
    model: dict[str, Any] = {
        "name": "m",
        "deployments": [{**dep(upstream, "a"), "prices": PRICES}],
    }
    if model_cache is not None:
        model["cache"] = model_cache
    gw = await make_gateway([model], sections={"cache": cache or {}, **(sections or {})})
    return gw, upstream


async def team_keys(gw: Gateway) -> dict[str, str]:
    """Real virtual keys, issued through the admin API: two in team-a, one in team-b and
    one without a team, by the names the tests use."""
    for team in ("team-a", "team-b"):
        await admin(gw, "POST", "/admin/teams", {"id": team, "name": team})
    keys = {}
    for name, team in (
        ("sk-team-a-1", "team-a"),
        ("sk-team-a-2", "team-a"),
        ("sk-team-b-1", "team-b"),
        ("sk-solo", None),
    ):
        keys[name] = (await new_key(gw, team_id=team))[0]
    return keys


def database(tmp_path: Path) -> dict[str, Any]:
    """A database section, which virtual keys need."""
    return {"database": sqlite(tmp_path)}

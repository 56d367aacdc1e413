"""Helpers for the cache tests: a cached gateway on a simulator, and two-team auth."""

from __future__ import annotations

from typing import Any

from lockgate.core.auth import Authenticator
from lockgate.core.types import Principal
from tests.conftest import MASTER_KEY, Gateway, GatewayFactory, SimFactory, dep

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


class TeamAuth(Authenticator):
    """The master key plus virtual keys that belong to teams (the key store is built
    elsewhere; this stands in for it so the cache's tenant rule is driven over HTTP)."""

    KEYS = {
        "sk-team-a-1": Principal(key_id="key-a1", team_id="team-a"),
        "sk-team-a-2": Principal(key_id="key-a2", team_id="team-a"),
        "sk-team-b-1": Principal(key_id="key-b1", team_id="team-b"),
        "sk-solo": Principal(key_id="key-solo"),
    }

    def __init__(self) -> None:
        super().__init__(MASTER_KEY)

    async def authenticate(self, credential: str | None) -> Principal:
        if credential in self.KEYS:
            return self.KEYS[credential]
        return await super().authenticate(credential)

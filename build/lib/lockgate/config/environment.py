"""The configuration `lockgate serve` builds when it is given no file."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lockgate.config.loader import parse_config
from lockgate.config.schema import Config
from lockgate.providers.profiles import PROFILES

SIMULATED_MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")


def config_from_environment(env: Mapping[str, str]) -> Config | None:
    """Models for every provider key found in ``env``; None when there is none.

    Each provider serves its well-known model names plus `<provider>/*` for any other.
    """
    models: list[dict[str, Any]] = []
    taken: set[str] = set()
    for profile in PROFILES.values():
        if not profile.env_key or not env.get(profile.env_key):
            continue
        deployment = {"provider": profile.name, "api_key": env[profile.env_key]}
        for name in profile.default_models:
            if name not in taken:
                taken.add(name)
                models.append({"name": name, "deployments": [{**deployment, "model": name}]})
        models.append({"name": f"{profile.name}/*", "deployments": [{**deployment, "model": "*"}]})
    if not models:
        return None
    return parse_config({"server": _server(env), "models": models}, env)


def simulated_config(env: Mapping[str, str], simulator_url: str) -> Config:
    """Serve the built-in provider simulator as the upstream of a few familiar model names."""
    models = [
        {
            "name": name,
            "deployments": [
                {"provider": "openai", "model": name, "api_base": simulator_url, "id": "simulator"}
            ],
        }
        for name in SIMULATED_MODELS
    ]
    return parse_config({"server": _server(env), "models": models}, env)


def _server(env: Mapping[str, str]) -> dict[str, Any]:
    server: dict[str, Any] = {}
    if env.get("LOCKGATE_MASTER_KEY"):
        server["master_key"] = env["LOCKGATE_MASTER_KEY"]
    if env.get("LOCKGATE_HOST"):
        server["host"] = env["LOCKGATE_HOST"]
    if env.get("LOCKGATE_PORT"):
        server["port"] = env["LOCKGATE_PORT"]
    return server

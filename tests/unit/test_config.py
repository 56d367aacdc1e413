"""Config loading: env references, unknown keys, errors that name their path."""

from __future__ import annotations

import pytest

from lockgate.config.environment import config_from_environment
from lockgate.config.loader import ConfigError, parse_config

DEPLOYMENT = {"provider": "openai", "model": "gpt-4o-mini", "api_base": "http://127.0.0.1:9000/v1"}


def test_the_documented_shape_loads() -> None:
    cfg = parse_config(
        {
            "server": {"host": "127.0.0.1", "port": 4000, "master_key": "${LOCKGATE_MASTER_KEY}"},
            "models": [
                {
                    "name": "gpt-4o-mini",
                    "deployments": [{**DEPLOYMENT, "api_key": "${OPENAI_API_KEY}"}],
                }
            ],
        },
        env={"LOCKGATE_MASTER_KEY": "mk", "OPENAI_API_KEY": "sk-abc"},
    )
    assert cfg.server.master_key is not None
    assert cfg.server.master_key.get_secret_value() == "mk"
    dep = cfg.models[0].deployments[0]
    assert dep.api_key is not None and dep.api_key.get_secret_value() == "sk-abc"
    assert "sk-abc" not in repr(cfg)


def test_env_default_syntax() -> None:
    cfg = parse_config({"server": {"port": "${PORT:-4100}"}}, env={})
    assert cfg.server.port == 4100


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"srever": {}}, "srever: unknown key"),
        ({"server": {"port": 99999}}, "server.port: Input should be less than or equal to 65535"),
        (
            {"models": [{"name": "a", "deployments": [{**DEPLOYMENT, "provider": "nope"}]}]},
            "models.a.deployments[0].provider: unknown provider 'nope'",
        ),
        (
            {"models": [{"name": "a", "deployments": [{**DEPLOYMENT, "api_base": "not a url"}]}]},
            "models.a.deployments[0].api_base: Input should be a valid URL",
        ),
        ({"models": [{"name": "a", "deployments": []}]}, "models.a.deployments: List should"),
        (
            {"models": [{"name": "a", "deployments": [{**DEPLOYMENT, "wieght": 2}]}]},
            "models.a.deployments[0].wieght: unknown key",
        ),
        (
            {"models": [{"deployments": [DEPLOYMENT]}]},
            "models[0].name: Field required",
        ),
        (
            {"models": [{"name": "a", "deployments": [DEPLOYMENT]}] * 2},
            "is configured twice",
        ),
    ],
)
def test_errors_name_the_path(data: dict, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data, env={})
    assert any(problem in line for line in info.value.problems), info.value.problems


def test_missing_env_var_names_the_path() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            {"models": [{"name": "a", "deployments": [{**DEPLOYMENT, "api_key": "${NOPE}"}]}]},
            env={},
        )
    assert info.value.problems == [
        "models.a.deployments[0].api_key: environment variable NOPE is not set"
    ]


def test_config_from_environment() -> None:
    assert config_from_environment({}) is None
    cfg = config_from_environment({"OPENAI_API_KEY": "sk-1", "GROQ_API_KEY": "gsk-2"})
    assert cfg is not None
    names = [m.name for m in cfg.models]
    assert "gpt-4o-mini" in names and "openai/*" in names and "groq/*" in names

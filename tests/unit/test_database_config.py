"""The `database` config section and deployment `prices`."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lockgate.config.loader import ConfigError, parse_config
from lockgate.storage.database import async_url, safe_url


def test_defaults_to_a_sqlite_file_and_can_be_turned_off() -> None:
    config = parse_config({})
    assert config.database is not None
    assert config.database.url.get_secret_value() == "sqlite:///./lockgate.db"
    assert parse_config({"database": None}).database is None


def test_urls_get_async_drivers_and_secrets_stay_out_of_errors_and_logs() -> None:
    config = parse_config(
        {"database": {"url": "postgresql://lg:${PGPASS}@db:5432/lockgate"}},
        env={"PGPASS": "hunter2-secret"},
    )
    assert config.database is not None
    url = config.database.url.get_secret_value()
    assert async_url(url).drivername == "postgresql+asyncpg"
    assert async_url("sqlite:///x.db").drivername == "sqlite+aiosqlite"
    assert "hunter2-secret" not in safe_url(url)
    assert "hunter2-secret" not in repr(config.database)
    with pytest.raises(ConfigError) as bad:
        parse_config({"database": {"url": "mysql://root:hunter2-secret@db/x"}})
    assert "database.url" in str(bad.value) and "hunter2-secret" not in str(bad.value)


def test_prices_are_decimals_not_floats() -> None:
    config = parse_config(
        {
            "models": [
                {
                    "name": "m",
                    "deployments": [
                        {
                            "provider": "vllm",
                            "model": "m",
                            "api_base": "http://127.0.0.1:1/v1",
                            "prices": {"input": 0.1, "output": "0.3", "reasoning": 1.2},
                        }
                    ],
                }
            ]
        }
    )
    prices = config.models[0].deployments[0].prices
    assert prices is not None
    assert (prices.input, prices.output, prices.reasoning) == (
        Decimal("0.1"), Decimal("0.3"), Decimal("1.2"),
    )  # fmt: skip
    assert prices.cached_input is None

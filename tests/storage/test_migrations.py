"""Migrations build the schema on fresh SQLite and PostgreSQL databases, and what they
build is exactly what `storage/schema.py` declares."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from lockgate.config.schema import DatabaseConfig
from lockgate.storage.database import create_engine
from lockgate.storage.migrate import upgrade
from lockgate.storage.schema import metadata

TABLES = {
    "teams",
    "users",
    "virtual_keys",
    "budgets",
    "rate_limits",
    "spend_ledger",
    "spend_counters",
    "alembic_version",
}


def _diff_and_tables(sync_conn: Any) -> tuple[list[Any], set[str]]:
    context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
    return compare_metadata(context, metadata), set(inspect(sync_conn).get_table_names())


async def _inspect(cfg: DatabaseConfig) -> tuple[list[Any], set[str], str | None]:
    engine = await asyncio.to_thread(create_engine, cfg)
    try:
        async with engine.connect() as conn:
            diff, tables = await conn.run_sync(_diff_and_tables)
            version = await conn.run_sync(
                lambda c: MigrationContext.configure(c).get_current_revision()
            )
    finally:
        await engine.dispose()
    return diff, tables, version


async def test_migrations_build_the_declared_schema(db_config: DatabaseConfig) -> None:
    await asyncio.to_thread(upgrade, db_config)
    diff, tables, version = await _inspect(db_config)
    assert tables == TABLES
    assert version == "0002"
    assert diff == []  # the migrations and schema.py agree, column for column


async def test_migrating_twice_and_down_and_up_again(db_config: DatabaseConfig) -> None:
    await asyncio.to_thread(upgrade, db_config)
    await asyncio.to_thread(upgrade, db_config)  # already at head: nothing to do
    from alembic import command

    from lockgate.storage.migrate import alembic_config

    await asyncio.to_thread(command.downgrade, alembic_config(db_config), "base")
    _, tables, version = await _inspect(db_config)
    assert tables == {"alembic_version"}
    assert version is None
    await asyncio.to_thread(upgrade, db_config)
    diff, tables, _ = await _inspect(db_config)
    assert tables == TABLES and diff == []


async def test_replicas_migrating_at_once_take_turns(make_pg_database: Any, tmp_path: Path) -> None:
    """Three `lockgate migrate` processes on one fresh PostgreSQL database at once."""
    cfg = DatabaseConfig(url=await make_pg_database(), spool_path=None)
    config = tmp_path / "lockgate.yaml"
    text = f"database: {{url: '{cfg.url.get_secret_value()}'}}\n"
    await asyncio.to_thread(config.write_text, text)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lockgate", "migrate", "--config", str(config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(3)
    ]  # fmt: skip
    results = [await proc.communicate() for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], results
    diff, tables, version = await _inspect(cfg)
    assert tables == TABLES and version == "0002" and diff == []

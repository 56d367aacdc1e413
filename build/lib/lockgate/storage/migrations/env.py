"""Alembic environment: lockgate's migrations on an async engine (aiosqlite or asyncpg).

Run through `lockgate.storage.migrate` (start-up, `lockgate migrate`), which passes the
`DatabaseConfig` in ``config.attributes["database"]``.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from lockgate.storage.database import create_engine
from lockgate.storage.schema import metadata

# Replicas starting together take turns; the loser finds the schema up to date.
_MIGRATION_LOCK = 0x6C6B6761  # "lkga"


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER much
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})"))
        context.run_migrations()


async def _main(engine: AsyncEngine) -> None:
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("lockgate migrations run online only")
# Read every revision file and build the engine (it resolves a SQLite path on disk) before
# an event loop runs, so that nothing blocks one.
context.script.revision_map.get_revisions("heads")
asyncio.run(_main(create_engine(context.config.attributes["database"], poolclass=NullPool)))

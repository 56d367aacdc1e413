"""Alembic environment: lockgate's migrations on an async engine (aiosqlite or asyncpg).

Run through `lockgate.storage.migrate` (start-up, `lockgate migrate`), which passes the
`DatabaseConfig` in ``config.attributes["database"]``.
"""

from __future__ import annotations

import asyncio

import sqlalchemy
from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from lockgate.storage.database import async_url, create_engine
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


def _run_sqlite(url: URL) -> None:
    # SQLite needs no event loop here: the plain driver, in this (worker) thread. aiosqlite
    # would leave a thread behind that outlives a short-lived loop when it fails to connect.
    engine = sqlalchemy.create_engine(url.set(drivername="sqlite"), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


database = context.config.attributes["database"]
url = async_url(database.url.get_secret_value())
if url.get_backend_name() == "sqlite":
    _run_sqlite(url)
else:
    # Read every revision file and resolve the connection (~/.pgpass, certificates) before
    # an event loop runs, so that nothing blocks one.
    context.script.revision_map.get_revisions("heads")
    asyncio.run(_main(create_engine(database, poolclass=NullPool)))

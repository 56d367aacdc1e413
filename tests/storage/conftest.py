"""Databases for storage tests: a fresh SQLite file, or a fresh PostgreSQL database of the
test's own (created on the shared server under a unique name, dropped afterwards)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from lockgate.config.schema import DatabaseConfig
from lockgate.storage.database import async_url, create_engine
from lockgate.storage.migrate import upgrade_async
from lockgate.storage.pg_connect import PgConnector
from lockgate.storage.spend import SpendStore


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


class PgDatabases:
    """Fresh PostgreSQL databases on the shared server, dropped by ``drop_all``."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.created: list[str] = []

    async def _connect(self) -> asyncpg.Connection:
        url = async_url(self.server_url)
        connector = await asyncio.to_thread(PgConnector.resolve, url, 5.0)
        return await connector.connect()

    async def create(self) -> str:
        name = f"lockgate_test_{uuid.uuid4().hex[:16]}"
        conn = await self._connect()
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self.created.append(name)
        return _with_database(self.server_url, name)

    async def drop_all(self) -> None:
        if not self.created:
            return
        conn = await self._connect()
        try:
            for name in self.created:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture
async def make_pg_database(postgres_url: str) -> AsyncIterator[Callable[[], Any]]:
    """Create fresh PostgreSQL databases; each is dropped when the test ends."""
    databases = PgDatabases(postgres_url)
    yield databases.create
    await databases.drop_all()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_kind(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """Each kind of database; PostgreSQL's server URL is looked up here, outside the event
    loop (the look-up checks the server with a blocking connect)."""
    if request.param == "postgresql":
        return request.param, request.getfixturevalue("postgres_url")
    return request.param, None


@pytest.fixture
async def db_config(
    db_kind: tuple[str, str | None], tmp_path: Path
) -> AsyncIterator[DatabaseConfig]:
    """A fresh, empty database of each kind (migrations not applied)."""
    _, server = db_kind
    if server is None:
        yield DatabaseConfig(url=f"sqlite:///{tmp_path}/lockgate.db", spool_path=None)
        return
    databases = PgDatabases(server)
    yield DatabaseConfig(url=await databases.create(), spool_path=None)
    await databases.drop_all()


@pytest.fixture
async def store(db_config: DatabaseConfig) -> AsyncIterator[SpendStore]:
    """A migrated database of each kind behind a SpendStore."""
    await upgrade_async(db_config)
    engine = await asyncio.to_thread(create_engine, db_config)
    store = SpendStore(engine)
    yield store
    await store.close()
    await engine.dispose()

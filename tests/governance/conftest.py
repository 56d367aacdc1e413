"""A fresh PostgreSQL database per test for the governance tests (dropped afterwards)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.storage.conftest import PgDatabases
from tests.storage.tcp_proxy import TcpProxy


@pytest.fixture
async def pg_database(postgres_url: str) -> AsyncIterator[str]:
    databases = PgDatabases(postgres_url)
    yield await databases.create()
    await databases.drop_all()


@pytest.fixture
async def proxied_pg(pg_database: str) -> AsyncIterator[tuple[TcpProxy, str]]:
    """A fresh PostgreSQL database reached through a proxy the test can cut; request it
    before ``make_gateway`` so that the gateways close before the proxy does."""
    parts = urlsplit(pg_database)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    port = await proxy.start()
    yield proxy, urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))
    await proxy.cut()

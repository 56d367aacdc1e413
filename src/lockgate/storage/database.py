"""The database engine from `database.url`: SQLite (aiosqlite) or PostgreSQL (asyncpg)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from lockgate.config.schema import DatabaseConfig

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


class DatabaseURLError(ValueError):
    pass


def async_url(url: str) -> URL:
    """``sqlite:///f.db`` / ``postgresql://...`` with lockgate's async driver filled in."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with the URL in it
        raise DatabaseURLError("database.url: not a database URL") from exc
    backend = parsed.drivername.split("+", 1)[0]
    if backend not in _DRIVERS:
        raise DatabaseURLError(
            f"database.url: unsupported database {backend!r} (use sqlite or postgresql)"
        )
    return parsed.set(drivername=_DRIVERS[backend])


def safe_url(url: str | URL) -> str:
    """The URL with its password masked, for logs."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except Exception:
        return "(unparseable database URL)"
    return parsed.render_as_string(hide_password=True)


def create_engine(cfg: DatabaseConfig, **options: Any) -> AsyncEngine:
    """An engine for ``cfg``. Blocking (it reads a SQLite path, ~/.pgpass, certificates):
    call it in a worker thread, or before an event loop runs."""
    url = async_url(cfg.url.get_secret_value())
    options.setdefault("pool_pre_ping", True)  # connections die in an outage
    options.setdefault("hide_parameters", True)  # errors must not print ledger rows
    if url.get_backend_name() == "sqlite":
        options["connect_args"] = {"timeout": cfg.connect_timeout}
    else:
        from lockgate.storage.pg_connect import PgConnector  # asyncpg: for PostgreSQL only

        connector = PgConnector.resolve(url, cfg.connect_timeout)
        options["async_creator"] = connector.connect
        if "poolclass" not in options:
            options["pool_size"] = cfg.pool_size
            options["pool_timeout"] = cfg.connect_timeout
        url = url.set(query={})  # sslmode and friends are the connector's business
    engine = create_async_engine(url, **options)
    if url.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL: readers (reports) do not block the ledger writer; foreign keys are off by default.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()

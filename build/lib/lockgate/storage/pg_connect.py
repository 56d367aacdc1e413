"""PostgreSQL connections that open without touching the disk in the event loop.

asyncpg looks up ~/.pgpass and the ~/.postgresql certificate files every time it opens a
connection, inside the event loop. lockgate resolves the password and builds the TLS
context once, in a worker thread, and then opens each connection with explicit values,
so asyncpg has nothing left to read. libpq's `sslmode` is honoured: disable, allow/prefer
(TLS when the server offers it, else plain), require (TLS, unverified), verify-ca and
verify-full (`sslrootcert`, default ~/.postgresql/root.crt); `sslcert`/`sslkey` for
client certificates.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import URL

_ADVISORY = ("allow", "prefer")


@dataclass
class PgConnector:
    kwargs: dict[str, Any]
    tls: ssl.SSLContext | None
    advisory: bool  # allow/prefer: fall back to plain when the server has no TLS

    @classmethod
    def resolve(cls, url: URL, connect_timeout: float) -> PgConnector:
        """Blocking (reads files): call it in a worker thread."""
        query = dict(url.query)
        mode = str(query.get("sslmode") or query.get("ssl") or os.environ.get("PGSSLMODE") or "")
        mode = mode or "prefer"
        user = url.username or os.environ.get("PGUSER") or "postgres"
        database = url.database or os.environ.get("PGDATABASE") or user
        host = url.host or os.environ.get("PGHOST") or "localhost"
        port = url.port or int(os.environ.get("PGPORT") or 5432)
        password = (
            url.password or os.environ.get("PGPASSWORD") or _pgpass(host, port, database, user)
        )
        kwargs = {
            "host": host,
            "port": port,
            "user": user,
            "database": database,
            "password": password or "",  # "": asyncpg must not look for a pgpass file
            "timeout": connect_timeout,
            "command_timeout": 30,
        }
        tls = None if mode == "disable" else _tls_context(mode, query)
        return cls(kwargs=kwargs, tls=tls, advisory=mode in _ADVISORY)

    async def connect(self) -> asyncpg.Connection:
        if self.tls is None:
            return await asyncpg.connect(ssl=False, **self.kwargs)
        try:
            return await asyncpg.connect(ssl=self.tls, **self.kwargs)
        except ConnectionError as exc:
            # asyncpg's "rejected SSL upgrade": the server has no TLS. prefer/allow go plain.
            if not self.advisory or "SSL" not in str(exc):
                raise
            self.tls = None
            return await asyncpg.connect(ssl=False, **self.kwargs)


def _tls_context(mode: str, query: dict[str, Any]) -> ssl.SSLContext:
    verify = mode in ("verify-ca", "verify-full")
    if verify:
        root = query.get("sslrootcert") or os.environ.get("PGSSLROOTCERT")
        cafile = str(root) if root else str(Path.home() / ".postgresql" / "root.crt")
        context = ssl.create_default_context(cafile=cafile)
        context.check_hostname = mode == "verify-full"
    elif mode in ("allow", "prefer", "require"):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        raise ValueError(f"database.url: unknown sslmode {mode!r}")
    cert = query.get("sslcert") or os.environ.get("PGSSLCERT")
    if cert:
        key = query.get("sslkey") or os.environ.get("PGSSLKEY")
        context.load_cert_chain(str(cert), keyfile=str(key) if key else None)
    return context


def _pgpass(host: str, port: int, database: str, user: str) -> str | None:
    """The password ~/.pgpass (or $PGPASSFILE) gives for this connection, if any."""
    path = os.environ.get("PGPASSFILE")
    passfile = Path(path) if path else Path.home() / ".pgpass"
    try:
        lines = passfile.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        fields = _split_pgpass(line)
        if len(fields) != 5:
            continue
        wanted = (host, str(port), database, user)
        if all(f in ("*", w) for f, w in zip(fields[:4], wanted, strict=True)):
            return fields[4]
    return None


def _split_pgpass(line: str) -> list[str]:
    """hostname:port:database:username:password, with \\: and \\\\ escapes."""
    fields, current, escaped = [], "", False
    for char in line:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":":
            fields.append(current)
            current = ""
        else:
            current += char
    fields.append(current)
    return fields

"""The database a gateway runs with: engine, migrations at start-up, the ledger writer."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from lockgate.config.schema import DatabaseConfig
from lockgate.core.tasks import TaskTracker
from lockgate.storage.database import create_engine, safe_url
from lockgate.storage.ledger import LedgerWriter
from lockgate.storage.migrate import upgrade_async
from lockgate.storage.spend import SpendStore

log = logging.getLogger(__name__)


class Database:
    def __init__(self, cfg: DatabaseConfig, tasks: TaskTracker) -> None:
        self.cfg = cfg
        self.url = safe_url(cfg.url.get_secret_value())  # for logs: no password
        self.spend = SpendStore(
            timeout=cfg.connect_timeout,
            writer_cpus=cfg.writer_cpus,
            url=cfg.url.get_secret_value(),
        )
        self.ledger = LedgerWriter(self.spend, cfg, tasks)

    @property
    def engine(self) -> AsyncEngine:
        return self.spend.engine

    async def migrate(self) -> None:
        await upgrade_async(self.cfg)

    async def start(self) -> None:
        """Migrate, then start the ledger writer. A database that cannot be reached does not
        stop the gateway: records buffer, and the writer migrates once it can connect."""
        # In a thread: SQLAlchemy resolves a SQLite file's path on disk when it builds one.
        self.spend.engine = await asyncio.to_thread(create_engine, self.cfg)
        if self.cfg.migrate:
            try:
                await asyncio.wait_for(self.migrate(), self.cfg.connect_timeout * 3)
            except Exception as exc:
                log.error(
                    "database %s: migrations failed at start-up (%s: %s); serving anyway, "
                    "spend records are buffered until it is reachable",
                    self.url,
                    type(exc).__name__,
                    str(exc).splitlines()[0][:200] if str(exc) else "",
                )
                self.ledger.migrate_later(self.migrate)
            else:
                log.info("database %s ready", self.url)
        await self.ledger.start()

    async def close(self, grace: float) -> None:
        await self.ledger.close(grace)
        await self.spend.close()
        if self.spend.bound:
            await self.engine.dispose()

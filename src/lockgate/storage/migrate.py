"""Schema migrations (Alembic, shipped in `migrations/`): applied at start-up and by
`lockgate migrate`."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from lockgate.config.schema import DatabaseConfig
from lockgate.storage.database import safe_url

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).with_name("migrations")
# Alembic keeps its migration context in module globals: one migration per process at a time.
_ONE_AT_A_TIME = threading.Lock()


def alembic_config(cfg: DatabaseConfig) -> AlembicConfig:
    # Imported here, not at start-up: Alembic (and Mako) weigh megabytes a gateway only
    # needs while it migrates.
    from alembic.config import Config as AlembicConfig

    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # a line each
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database"] = cfg
    return config


def upgrade(cfg: DatabaseConfig, revision: str = "head") -> None:
    """Bring the schema to ``revision``; blocking (it runs its own event loop)."""
    log.info("migrating %s to %s", safe_url(cfg.url.get_secret_value()), revision)
    from alembic import command

    with _ONE_AT_A_TIME:
        command.upgrade(alembic_config(cfg), revision)


async def upgrade_async(cfg: DatabaseConfig) -> None:
    """`upgrade` in a worker thread: Alembic reads files and runs its own event loop."""
    await asyncio.to_thread(upgrade, cfg)

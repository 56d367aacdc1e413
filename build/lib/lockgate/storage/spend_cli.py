"""`lockgate spend`: a spend report from the ledger, printed as a table."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from lockgate.config.schema import DatabaseConfig
from lockgate.storage.database import create_engine
from lockgate.storage.reports import spend_by


async def print_spend(cfg: DatabaseConfig, by: str, days: int) -> int:
    engine = await asyncio.to_thread(create_engine, cfg)
    end = datetime.now(UTC)
    try:
        rows = await spend_by(engine, by, end - timedelta(days=days), end)
    finally:
        await engine.dispose()
    print(f"{by:<40} {'USD':>16} {'requests':>9} {'errors':>7} {'prompt':>10} {'completion':>10}")
    for row in rows:
        usd = f"{Decimal(row.cost_nanos).scaleb(-9):f}"  # exact: nine decimals
        print(
            f"{row.group or '-':<40} {usd:>16} {row.requests:>9} {row.errors:>7} "
            f"{row.prompt_tokens:>10} {row.completion_tokens:>10}"
        )
    return 0

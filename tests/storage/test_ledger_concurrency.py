"""Two gateways' ledger writers on one PostgreSQL database, thousands of records at once:
nothing lost, nothing counted twice, counters equal the sum of the ledger rows."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select

from lockgate.config.schema import DatabaseConfig
from lockgate.core.tasks import TaskTracker
from lockgate.storage.schema import spend_counters, spend_ledger
from lockgate.storage.service import Database
from tests.storage.records import MONDAY, make_record

UNIQUE = 3000
OVERLAP = 1000  # request ids both writers receive (the same request, reported twice)


def _record(i: int) -> Any:
    return make_record(
        f"req-{i:05d}",
        key_id=f"key-{i % 3}",
        user_id=f"user-{i % 2}",
        team_id="team-a" if i % 5 else "team-b",
        cost_nanos=1_000 + i,
        prompt_tokens=i % 97,
        completion_tokens=i % 13,
        started_at=MONDAY + (i % 4) * 86_400,  # spreads over days, one week and month
    )


async def _feed(db: Database, ids: range) -> None:
    for n, i in enumerate(ids):
        db.ledger.record(_record(i))
        if n % 50 == 0:
            await asyncio.sleep(0)  # let the other gateway's writer interleave


async def test_two_writers_on_one_database(make_pg_database: Any) -> None:
    url = await make_pg_database()
    cfgs = [
        DatabaseConfig(url=url, spool_path=None, batch_size=200, flush_interval=0.01)
        for _ in range(2)
    ]
    databases = [Database(cfg, TaskTracker()) for cfg in cfgs]
    await asyncio.gather(*(db.start() for db in databases))  # both migrate, one does work
    half = (UNIQUE + OVERLAP) // 2
    await asyncio.gather(
        _feed(databases[0], range(0, half)),
        _feed(databases[1], range(half - OVERLAP, UNIQUE)),
    )
    for db in databases:
        await db.ledger.close(grace=60)
    written = sum(db.ledger.counts["written"] for db in databases)
    duplicates = sum(db.ledger.counts["duplicate"] for db in databases)
    assert (written, duplicates) == (UNIQUE, OVERLAP)
    assert all(db.ledger.counts["dropped"] == 0 for db in databases)

    engine = databases[0].engine
    led, ctr = spend_ledger.c, spend_counters.c
    async with engine.connect() as conn:
        ids = (await conn.execute(select(led.request_id))).scalars().all()
        assert sorted(ids) == [f"req-{i:05d}" for i in range(UNIQUE)]
        total = (await conn.execute(select(func.sum(led.cost_nanos)))).scalar()
        assert int(total) == sum(1_000 + i for i in range(UNIQUE))
        # Every counter equals the ledger rows it covers: per key, user and team, per day.
        for kind, column in (("key", led.key_id), ("user", led.user_id), ("team", led.team_id)):
            expected = {
                (scope, day): (int(cost), int(n), int(p), int(c))
                for scope, day, cost, n, p, c in await conn.execute(
                    select(column, led.day, func.sum(led.cost_nanos), func.count(),
                           func.sum(led.prompt_tokens), func.sum(led.completion_tokens))
                    .group_by(column, led.day)
                )
            }  # fmt: skip
            counted = {
                (scope, start): (int(cost), int(n), int(p), int(c))
                for scope, start, cost, n, p, c in await conn.execute(
                    select(ctr.scope_id, ctr.period_start, ctr.spent_nanos, ctr.requests,
                           ctr.prompt_tokens, ctr.completion_tokens)
                    .where(ctr.scope_kind == kind, ctr.period == "daily")
                )
            }  # fmt: skip
            assert counted == expected
            lifetime = await conn.execute(
                select(func.sum(ctr.spent_nanos), func.sum(ctr.requests)).where(
                    ctr.scope_kind == kind, ctr.period == "none"
                )
            )
            assert tuple(map(int, lifetime.one())) == (int(total), UNIQUE)
    for db in databases:
        await db.close(grace=1)

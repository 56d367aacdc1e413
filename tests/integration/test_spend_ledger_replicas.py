"""The ledger through the HTTP app on PostgreSQL: a database outage does not stop
requests, and two gateways sharing one database store each request once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import func, select

from lockgate.storage.schema import spend_counters, spend_ledger
from tests.conftest import HELLO, GatewayFactory, SimFactory, dep, wait_until
from tests.storage.conftest import PgDatabases
from tests.storage.tcp_proxy import TcpProxy


def _section(url: str, tmp_path: Path, name: str) -> dict[str, object]:
    return {
        "database": {
            "url": url,
            "spool_path": str(tmp_path / f"{name}.spool"),
            "flush_interval": 0.02,
            "connect_timeout": 2,
        }
    }


async def test_requests_flow_through_a_database_outage(
    make_gateway: GatewayFactory, make_sim: SimFactory, postgres_url: str, tmp_path: Path
) -> None:
    databases = PgDatabases(postgres_url)
    url = await databases.create()
    parts = urlsplit(url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    port = await proxy.start()
    proxied = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))
    try:
        sim = await make_sim()
        gw = await make_gateway([{"name": "gpt-4o-mini", "deployments": [dep(sim, "d")]}],
                                sections=_section(proxied, tmp_path, "a"))  # fmt: skip
        db = gw.state.database
        assert db is not None
        async with gw.client() as client:
            await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
            await wait_until(lambda: db.ledger.counts["written"] == 1, 10)

            await proxy.cut()
            started = time.perf_counter()
            for i in range(20):
                reply = await client.chat.completions.create(
                    model="gpt-4o-mini", messages=HELLO, extra_headers={"x-request-id": f"o{i}"}
                )
                assert reply.choices[0].message.content
            assert time.perf_counter() - started < 5  # nobody waited for the database
            await wait_until(lambda: not db.ledger.up, 10)

            await proxy.restore()
            await wait_until(lambda: db.ledger.counts["written"] == 21 and db.ledger.up, 20)
        async with db.engine.connect() as conn:
            count = await conn.execute(select(func.count()).select_from(spend_ledger))
            assert count.scalar() == 21
    finally:
        await proxy.cut()
        await databases.drop_all()


async def test_two_gateways_on_one_database_store_a_request_once(
    make_gateway: GatewayFactory, make_sim: SimFactory, postgres_url: str, tmp_path: Path
) -> None:
    databases = PgDatabases(postgres_url)
    url = await databases.create()
    try:
        sim = await make_sim()
        models = [{"name": "gpt-4o-mini", "deployments": [dep(sim, "d")]}]
        gateways = [
            await make_gateway(models, sections=_section(url, tmp_path, name))
            for name in ("a", "b")
        ]

        async def traffic(index: int) -> None:
            async with gateways[index].client() as client:
                for i in range(40):
                    # Every fourth request id is sent to both gateways: one request, told twice.
                    rid = f"shared-{i}" if i % 4 == 0 else f"g{index}-{i}"
                    await client.chat.completions.create(
                        model="gpt-4o-mini", messages=HELLO, extra_headers={"x-request-id": rid}
                    )

        await asyncio.gather(traffic(0), traffic(1))
        ledgers = [gw.state.database.ledger for gw in gateways if gw.state.database]
        await wait_until(lambda: sum(w.counts["written"] + w.counts["duplicate"]
                                     for w in ledgers) == 80, 20)  # fmt: skip
        assert sum(w.counts["written"] for w in ledgers) == 70
        db = gateways[0].state.database
        assert db is not None
        async with db.engine.connect() as conn:
            rows = (await conn.execute(select(func.count()).select_from(spend_ledger))).scalar()
            cost = (await conn.execute(select(func.sum(spend_ledger.c.cost_nanos)))).scalar()
            counted = (
                await conn.execute(
                    select(spend_counters.c.requests, spend_counters.c.spent_nanos).where(
                        spend_counters.c.period == "none", spend_counters.c.scope_id == "master"
                    )
                )
            ).one()
        assert rows == 70
        assert tuple(counted) == (70, int(cost))
    finally:
        await databases.drop_all()

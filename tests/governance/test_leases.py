"""Shared limits and budgets on credit and leases, through the HTTP app with Redis: a key
with large limits and budget answers without a Redis round trip per request, and what
reaches Redis is exactly what the ledger billed once the gateway has shut down."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from redis import Redis

from lockgate.features.ratelimit import US
from tests.conftest import GatewayFactory, SimFactory
from tests.governance.helpers import HELLO, TOKEN_NANOS, admin, ledger_cost, new_key, priced, sqlite

REQUESTS = 150


@pytest.mark.parametrize("credit", [True, False], ids=["credit", "per-request"])
async def test_a_large_budget_and_limits_on_leases_bill_redis_exactly(
    credit: bool,
    make_gateway: GatewayFactory,
    make_sim: SimFactory,
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
) -> None:
    sim = await make_sim(completion_tokens=16)
    gw = await make_gateway(
        priced(sim),
        sections={
            "database": sqlite(tmp_path),
            "redis": {"url": redis_url, "prefix": redis_prefix, "limit_credit": credit},
        },
    )
    key, key_id = await new_key(gw)
    await admin(gw, "PUT", f"/admin/keys/{key_id}/budgets", {"limit_usd": "100000"})
    await admin(gw, "PUT", f"/admin/keys/{key_id}/limits", {"rpm": 1_000_000, "tpm": 10**8})
    limits = gw.state.pipeline.gate.limiter  # type: ignore[union-attr]
    budgets = gw.state.pipeline.gate.budgets  # type: ignore[union-attr]

    async with gw.client(api_key=key) as client:
        gate = asyncio.Semaphore(16)

        async def one() -> tuple[int, str]:
            async with gate:
                raw = await client.chat.completions.with_raw_response.create(
                    model="gpt-4o-mini", messages=HELLO, max_tokens=20
                )
                await asyncio.sleep(0.005)
            return raw.status_code, raw.headers["x-ratelimit-limit-requests"]

        answers = await asyncio.gather(*(one() for _ in range(REQUESTS)))
    assert set(answers) == {(200, "1000000")}
    assert sum(sim.counts.values()) == REQUESTS
    # With credit, the key's rpm and tpm each hold some and its budget is on a lease:
    # admitted in process. Without, every request went to Redis; the bill is the same.
    assert len(limits.credits) == (2 if credit else 0)
    assert len(budgets.leases) == (1 if credit else 0)

    async with aiohttp.ClientSession() as session, session.get(f"{gw.url}/metrics") as resp:
        scraped = await resp.text()
    holdings = {
        engine: float(line.rsplit(" ", 1)[1])
        for engine in ("rate_limits", "budgets")
        for line in scraped.splitlines()
        if line.startswith(f'lockgate_limits_shared_holdings{{engine="{engine}"}}')
    }
    assert holdings == (
        {"rate_limits": 2, "budgets": 1} if credit else {"rate_limits": 0, "budgets": 0}
    )

    billed = await ledger_cost(gw, key_id, REQUESTS)
    assert billed == REQUESTS * 16 * TOKEN_NANOS
    await gw.stop()  # the leases' last spend is sent and their credit given back

    spent, reserved, rpm_ahead = await asyncio.to_thread(
        _redis_state, redis_url, redis_prefix, key_id
    )
    assert (spent, reserved) == (billed, 0)
    # 150 requests of 60 µs each at most; the credit taken beyond them was given back.
    assert rpm_ahead <= REQUESTS * 60


def _redis_state(url: str, prefix: str, key_id: str) -> tuple[int, int, int]:
    """The key's budget (spent, reserved) and how far its rpm cell is ahead of now (µs)."""
    redis = Redis.from_url(url)
    try:
        hashes = [k for k in redis.scan_iter(f"{prefix}{{lg-bg}}:key:*") if not k.endswith(b":res")]
        assert len(hashes) == 1
        spent, reserved = redis.hmget(hashes[0], ["spent", "reserved"])
        seconds, micros = redis.time()
        tat = redis.get(f"{prefix}{{lg-rl}}:key:{key_id}:*:rpm")
        ahead = 0 if tat is None else int(tat) - (seconds * US + micros)
        return int(spent or 0), int(reserved or 0), ahead
    finally:
        redis.close()

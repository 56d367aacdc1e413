"""Two gateways sharing one PostgreSQL and one Redis behave as one: a key revoked on one
is refused on the other at once, one rate limit and one budget hold across both, and with
the database down the keys they already know keep working."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.conftest import Gateway, GatewayFactory, SimFactory, dep, wait_until
from tests.governance.helpers import HELLO, admin, new_key
from tests.storage.tcp_proxy import TcpProxy

PRICES = {"input": 0, "output": 1000}  # 1_000_000 nano-USD an output token


async def _pair(
    make_gateway: GatewayFactory, sim: Any, db_url: str, redis_url: str, prefix: str, tmp: Path
) -> tuple[Gateway, Gateway]:
    models = [{"name": "gpt-4o-mini", "deployments": [{**dep(sim, "d"), "prices": PRICES}]}]
    pair = []
    for name in ("a", "b"):
        sections = {
            "database": {"url": db_url, "spool_path": str(tmp / f"{name}.spool"),
                         "flush_interval": 0.02},
            "redis": {"url": redis_url, "prefix": prefix, "sync_interval": 0.2},
        }  # fmt: skip
        pair.append(await make_gateway(models, sections=sections))
    await wait_until(lambda: all(g.state.replicas and g.state.replicas.link.up for g in pair))
    return pair[0], pair[1]


async def _ok(gw: Gateway, key: str, **ask: Any) -> bool:
    async with gw.client(api_key=key) as client:
        try:
            await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, **ask)
        except openai.RateLimitError:
            return False
    return True


async def test_two_replicas_one_revoke_one_limit_one_budget(
    make_gateway: GatewayFactory,
    make_sim: SimFactory,
    pg_database: str,
    redis_url: str,
    redis_prefix: str,
    tmp_path: Path,
) -> None:
    sim = await make_sim(completion_tokens=16, latency="100ms")
    a, b = await _pair(make_gateway, sim, pg_database, redis_url, redis_prefix, tmp_path)

    key, key_id = await new_key(a)
    assert await _ok(b, key)  # cached on b now
    await admin(a, "POST", f"/admin/keys/{key_id}/revoke")

    async def refused_on_b() -> bool:
        try:
            await _ok(b, key)
        except openai.AuthenticationError:
            return True
        return False

    deadline = asyncio.get_running_loop().time() + 2  # pub/sub: milliseconds, not the TTL
    while not await refused_on_b():
        assert asyncio.get_running_loop().time() < deadline, "b still serves a revoked key"

    limited, limited_id = await new_key(a)
    await admin(b, "PUT", f"/admin/keys/{limited_id}/limits", {"rpm": 6})
    results = await asyncio.gather(*(_ok(gw, limited) for gw in (a, b) * 6))
    assert sum(results) == 6  # 6 per minute in total, not per replica

    spender, spender_id = await new_key(b)
    await admin(a, "PUT", f"/admin/keys/{spender_id}/budgets", {"limit_usd": "0.1"})
    # $0.02 reserved each (max_tokens 20), $0.016 spent each: at most 5 in flight at once.
    results = await asyncio.gather(*(_ok(gw, spender, max_tokens=20) for gw in (a, b) * 10))
    assert 5 <= sum(results) <= 6
    usage: dict[str, Any] = {}

    async def settled() -> bool:
        nonlocal usage
        usage = await admin(a, "GET", f"/admin/keys/{spender_id}/usage")
        return _spent(usage) == sum(results) * 16_000_000

    for _ in range(50):
        if await settled():
            break
        await asyncio.sleep(0.1)
    assert _spent(usage) <= 100_000_000  # one budget across both replicas


def _spent(usage: dict[str, Any]) -> int:
    return int(next(p for p in usage["periods"] if p["period"] == "monthly")["spent_nanos"])


async def test_database_down_cached_keys_keep_working_unknown_keys_get_503(
    proxied_pg: tuple[TcpProxy, str],
    make_gateway: GatewayFactory,
    make_sim: SimFactory,
    tmp_path: Path,
) -> None:
    sim = await make_sim()
    proxy, through_proxy = proxied_pg
    gw = await make_gateway(
        [{"name": "gpt-4o-mini", "deployments": [dep(sim, "d")]}],
        sections={
            "database": {"url": through_proxy, "spool_path": str(tmp_path / "l.spool"),
                         "connect_timeout": 0.5},
            "keys": {"cache_ttl": 0.2},
        },
    )  # fmt: skip
    known, _ = await new_key(gw)
    never_used, _ = await new_key(gw)
    assert await _ok(gw, known)
    await proxy.cut()
    try:
        await asyncio.sleep(0.3)  # the cached entry is past its TTL: the database is asked
        assert await _ok(gw, known)  # and cannot answer: the stale entry serves
        assert await _ok(gw, known)
        async with gw.client(api_key=never_used) as client:
            with pytest.raises(openai.InternalServerError) as unavailable:
                await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        assert unavailable.value.status_code == 503
        assert unavailable.value.code == "auth_unavailable"
    finally:
        await proxy.restore()
    assert await _ok(gw, never_used)  # the database is back

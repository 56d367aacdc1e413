"""Admin API calls and gateway configs shared by the governance tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import select

from lockgate.storage.schema import spend_ledger
from tests.conftest import MASTER_KEY, Gateway, Simulator, dep, wait_until

HELLO = [{"role": "user", "content": "hello"}]
# $1000 per million output tokens, input free: each output token costs 1_000_000 nano-USD.
PRICES = {"input": 0, "output": 1000}
TOKEN_NANOS = 1_000_000


def sqlite(tmp_path: Path, name: str = "lockgate") -> dict[str, Any]:
    return {
        "url": f"sqlite:///{tmp_path}/{name}.db",
        "spool_path": str(tmp_path / f"{name}.spool"),
        "flush_interval": 0.02,
    }


def models(sim: Simulator, *names: str) -> list[dict[str, Any]]:
    return [{"name": n, "deployments": [dep(sim, n, "gpt-4o-mini")]} for n in names]


def priced(sim: Simulator) -> list[dict[str, Any]]:
    """gpt-4o-mini on ``sim`` (deployment ``d``) at PRICES."""
    return [{"name": "gpt-4o-mini", "deployments": [{**dep(sim, "d"), "prices": PRICES}]}]


async def ledger_rows(gw: Gateway, count: int) -> list[Any]:
    """Every ledger row, once at least ``count`` are written."""
    db = gw.state.database
    assert db is not None
    await wait_until(lambda: db.ledger.counts["written"] >= count, 10)
    async with db.engine.connect() as conn:
        return list((await conn.execute(select(spend_ledger))).mappings().all())


async def ledger_cost(gw: Gateway, key_id: str, count: int, refused: int = 0) -> int:
    """The cost on the key's ledger rows once ``count`` answered (each of 16 output tokens
    at PRICES) and ``refused`` refused by its budget are written."""
    mine = [r for r in await ledger_rows(gw, count + refused) if r["key_id"] == key_id]
    answered = [r for r in mine if r["status"] == "ok"]
    assert len(answered) == count and len(mine) == count + refused
    assert all(r["cost_nanos"] == 16 * TOKEN_NANOS for r in answered)
    over = [r for r in mine if r["status"] != "ok"]
    assert all(r["status"] == "budget_exceeded" and r["http_status"] == 429 for r in over)
    assert all(r["cost_nanos"] == 0 and r["deployment"] == "" for r in over)
    return sum(int(r["cost_nanos"]) for r in answered)


async def call(
    gw: Gateway, method: str, path: str, body: Any = None, key: str | None = MASTER_KEY
) -> tuple[int, Any]:
    """One admin API call: (status, JSON body)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, gw.url + path, json=body, headers=headers) as resp,
    ):
        return resp.status, await resp.json()


async def admin(gw: Gateway, method: str, path: str, body: Any = None) -> Any:
    status, data = await call(gw, method, path, body)
    assert status in (200, 201), (status, data)
    return data


async def new_key(gw: Gateway, **options: Any) -> tuple[str, str]:
    """(the key, its id)."""
    created = await admin(gw, "POST", "/admin/keys", options)
    return created["key"], created["id"]

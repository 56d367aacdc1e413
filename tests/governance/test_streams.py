"""Streams under a budget: a stream the client cuts off releases its reservation and is
billed for what it produced, the same figure the ledger records."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from sqlalchemy import select

from lockgate.features.budgets import LocalBudgets
from lockgate.features.enforce import Governor
from lockgate.storage.schema import spend_ledger
from tests.conftest import GatewayFactory, SimFactory, dep, wait_until
from tests.governance.helpers import HELLO, admin, new_key, sqlite


async def test_cut_off_stream_settles_its_budget_with_what_it_produced(
    make_gateway: GatewayFactory, make_sim: SimFactory, tmp_path: Path
) -> None:
    sim = await make_sim(inter_token="50ms", stream_chunks=40, completion_tokens=400)
    prices = {"input": 0, "output": 1000}  # 1_000_000 nano-USD an output token
    gw = await make_gateway(
        [{"name": "gpt-4o-mini", "deployments": [{**dep(sim, "d"), "prices": prices}]}],
        sections={"database": sqlite(tmp_path)},
    )
    key, key_id = await new_key(gw)
    await admin(gw, "PUT", f"/admin/keys/{key_id}/budgets", {"limit_usd": "5"})
    await admin(gw, "PUT", f"/admin/keys/{key_id}/limits", {"tpm": 100_000})
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            f"{gw.url}/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": HELLO, "stream": True, "max_tokens": 400},
            headers={"Authorization": f"Bearer {key}", "x-request-id": "cut"},
        )
        assert resp.status == 200
        assert resp.headers["x-ratelimit-limit-tokens"] == "100000"
        for _ in range(3):
            assert (await resp.content.readline()).startswith(b"data: ")
            await resp.content.readline()
        resp.close()
    await wait_until(lambda: sim.disconnects == 1)
    db = gw.state.database
    assert db is not None
    await wait_until(lambda: db.ledger.counts["written"] >= 1, 10)
    async with db.engine.connect() as conn:
        row = (await conn.execute(select(spend_ledger))).mappings().one()
    assert row["usage_estimated"] and 0 < row["cost_nanos"] < 400 * 1_000_000
    gate = gw.state.pipeline.gate
    assert isinstance(gate, Governor) and isinstance(gate.budgets, LocalBudgets)
    principal = gw.state.keys.cached(key) if gw.state.keys else None
    assert principal is not None
    # Reserved 400 tokens' worth; settled with the produced part only, nothing still held.
    await wait_until(lambda: gate.budgets.usage(principal.budgets[0]) == (row["cost_nanos"], 0))

"""A gateway with a SQLite ledger, a cache and four simulated upstreams (fast, a second
model, always 500, always 429), and real SDK traffic through it, for the dashboard tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import openai
from sqlalchemy import insert

from lockgate.storage.schema import budgets
from tests.conftest import Gateway, GatewayFactory, SimFactory, dep, wait_until

BUDGET_NANOS = 1_000_000  # USD 0.001 a day for the master key


@dataclass
class Traffic:
    gw: Gateway
    ok: int  # requests that were answered (cache hit included)
    errors: int  # requests that failed (500s and 429s)
    limited: int  # of which 429s
    ids: list[str]  # every request id sent, in order


def _ask(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Question number {i}: what is {i} squared?"}]


async def traffic_gateway(
    make_gateway: GatewayFactory, make_sim: SimFactory, tmp_path: Path
) -> Traffic:
    fast = await make_sim(latency="10ms")
    other = await make_sim(latency="30ms", ttft="20ms")
    broken = await make_sim(error_rates={500: 1.0})
    throttled = await make_sim(error_rates={429: 1.0})
    gw = await make_gateway(
        [
            {"name": "gpt-4o-mini", "deployments": [dep(fast, "primary")]},
            {"name": "gpt-4o", "deployments": [dep(other, "secondary", "gpt-4o")]},
            {"name": "broken", "deployments": [dep(broken, "down")]},
            {"name": "limited", "deployments": [dep(throttled, "throttled")]},
            {
                "name": "fallback-demo",
                "deployments": [dep(broken, "down-too")],
                "fallbacks": ["gpt-4o-mini"],
            },
        ],
        retry={"retries": 0},
        sections={
            "cache": {},
            "database": {
                "url": f"sqlite:///{tmp_path}/lockgate.db",
                "spool_path": str(tmp_path / "ledger.spool"),
                "flush_interval": 0.02,
            },
        },
    )
    db = gw.state.database
    assert db is not None
    await wait_until(lambda: db.spend.bound, 10)
    async with db.engine.begin() as conn:
        await conn.execute(
            insert(budgets).values(
                scope_kind="key", scope_id="master", limit_nanos=BUDGET_NANOS, period="daily"
            )
        )
    ids: list[str] = []
    ok = errors = limited = 0

    def rid() -> dict[str, str]:
        ids.append(f"dash-{len(ids):03d}")
        return {"x-request-id": ids[-1]}

    async with gw.client() as client:
        for i in range(6):
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=_ask(i), temperature=0, extra_headers=rid()
            )
            ok += 1
        # The same question again: answered by the cache.
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=_ask(0), temperature=0, extra_headers=rid()
        )
        ok += 1
        for i in range(3):
            stream = await client.chat.completions.create(
                model="gpt-4o", messages=_ask(100 + i), stream=True, extra_headers=rid()
            )
            async for _ in stream:
                pass
            ok += 1
        await client.chat.completions.create(
            model="fallback-demo", messages=_ask(200), extra_headers=rid()
        )
        ok += 1
        for model in ("broken", "broken", "limited", "limited"):
            try:
                await client.chat.completions.create(
                    model=model, messages=_ask(300), extra_headers=rid()
                )
            except openai.APIStatusError as exc:
                errors += 1
                limited += exc.status_code == 429
    total = ok + errors
    await wait_until(lambda: db.ledger.counts["written"] >= total, 10)
    return Traffic(gw=gw, ok=ok, errors=errors, limited=limited, ids=ids)

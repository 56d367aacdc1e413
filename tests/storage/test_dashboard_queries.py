"""The dashboard's ledger queries on SQLite and on PostgreSQL: time buckets (floored, never
rounded), percentiles, paging, one row, budgets with their current-period spend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from lockgate.storage import dashboard_queries as q
from lockgate.storage.schema import budgets
from lockgate.storage.spend import SpendStore
from tests.storage.records import MONDAY, make_record

START = datetime.fromtimestamp(MONDAY, UTC)
WHOLE = q.Range(START - timedelta(hours=1), START + timedelta(hours=1))


async def _traffic(store: SpendStore) -> None:
    records = [
        # Latencies 1..20 ms on gpt-4o-mini in the first minute (the last at 59.85 s).
        *(
            make_record(f"a{i:02d}", started_at=MONDAY + i * 3.15, latency_ms=i + 1)
            for i in range(20)
        ),
        make_record("b1", started_at=MONDAY + 60.4, model_group="gpt-4o", deployment="d2",
                    key_id="key-b", team_id="t1", cost_nanos=5_000, latency_ms=300),
        make_record("b2", started_at=MONDAY + 89.9, model_group="gpt-4o", deployment="d2",
                    key_id="key-b", team_id="t1", status="rate_limited", http_status=429,
                    cost_nanos=0, latency_ms=2),
        make_record("c1", started_at=MONDAY + 100, cache_hit=True, cost_nanos=0, latency_ms=0),
    ]  # fmt: skip
    assert await store.write(records) == len(records)


async def test_series_buckets_by_group(store: SpendStore) -> None:
    await _traffic(store)
    rows = await q.series(store.engine, WHOLE, "model", 60)
    cells = {(r["t"], r["group"]): r for r in rows}
    first = cells[(int(MONDAY), "gpt-4o-mini")]
    assert first["requests"] == 20 and first["cost_nanos"] == 20 * 27_000
    second = cells[(int(MONDAY) + 60, "gpt-4o")]
    assert second == {
        "t": int(MONDAY) + 60, "group": "gpt-4o", "requests": 2, "errors": 1,
        "rate_limited": 1, "cache_hits": 0, "cost_nanos": 5_000,
    }  # fmt: skip
    assert cells[(int(MONDAY) + 60, "gpt-4o-mini")]["cache_hits"] == 1
    teams = await q.series(store.engine, WHOLE, "team", 3600)
    assert {(r["group"], r["requests"]) for r in teams} == {(None, 21), ("t1", 2)}
    only = q.Range(WHOLE.start, WHOLE.end, model="gpt-4o")
    assert [r["group"] for r in await q.series(store.engine, only, "key", 60)] == ["key-b"]
    later = q.Range(START + timedelta(seconds=61), WHOLE.end)
    assert sum(r["requests"] for r in await q.series(store.engine, later, "model", 60)) == 2


async def test_latency_percentiles_leave_out_errors_and_cache_hits(store: SpendStore) -> None:
    await _traffic(store)
    lat = await q.latency(store.engine, WHOLE, 60)
    assert lat["window"] == 21
    models = {m["model"]: m for m in lat["models"]}
    assert models["gpt-4o-mini"] == {"model": "gpt-4o-mini", "count": 20, "p50": 10,
                                     "p95": 19, "p99": 20}  # fmt: skip
    assert models["gpt-4o"]["p50"] == models["gpt-4o"]["p99"] == 300
    assert [s["t"] for s in lat["series"]] == [int(MONDAY), int(MONDAY) + 60]


async def test_recent_pages_and_detail(store: SpendStore) -> None:
    await _traffic(store)
    first = await q.recent(store.engine, WHOLE, 2, 0)
    assert first["total"] == 23
    assert [r["request_id"] for r in first["rows"]] == ["c1", "b2"]
    assert first["rows"][0]["created_at"] == (START + timedelta(seconds=100)).isoformat()
    second = await q.recent(store.engine, WHOLE, 2, 2)
    assert [r["request_id"] for r in second["rows"]] == ["b1", "a19"]
    errors = await q.recent(store.engine, WHOLE, 10, 0, "error")
    assert [r["request_id"] for r in errors["rows"]] == ["b2"]
    row = await q.detail(store.engine, "b2")
    assert row is not None and row["http_status"] == 429 and row["day"] == START.date().isoformat()
    assert await q.detail(store.engine, "nope") is None


async def test_budgets_show_current_period_spend(store: SpendStore) -> None:
    await _traffic(store)
    async with store.engine.begin() as conn:
        await conn.execute(
            insert(budgets),
            [
                {"scope_kind": "key", "scope_id": "key-b", "limit_nanos": 10_000,
                 "period": "daily"},
                {"scope_kind": "team", "scope_id": "t9", "limit_nanos": 0, "period": "none"},
            ],
        )  # fmt: skip
    today = await q.budgets_used(store.engine, START.date())
    assert today[0]["spent_nanos"] == 5_000 and today[0]["used"] == 0.5
    assert today[1]["spent_nanos"] == 0 and today[1]["used"] is None
    tomorrow = await q.budgets_used(store.engine, START.date() + timedelta(days=1))
    assert tomorrow[0]["spent_nanos"] == 0

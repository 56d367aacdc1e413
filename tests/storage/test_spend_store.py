"""The ledger's write path and the spend reports, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select

from lockgate.storage.reports import current_usage, spend_by
from lockgate.storage.schema import spend_counters, spend_ledger
from lockgate.storage.spend import SpendStore
from tests.storage.records import MONDAY, make_record

DAY = 86_400.0
START = datetime.fromtimestamp(MONDAY, UTC).replace(hour=0)


async def _count(store: SpendStore) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(spend_ledger))).scalar())


async def test_a_record_is_stored_and_counted_once(store: SpendStore) -> None:
    first = make_record("req-1", user_id="u1", team_id="t1", cost_nanos=5_000)
    assert await store.write([first, make_record("req-2")]) == 2
    # The same request again (a replay, another replica) and twice within one batch.
    assert await store.write([first, make_record("req-3"), make_record("req-3")]) == 1
    assert await _count(store) == 3

    usage = await current_usage(store.engine, "key", "key-a", START.date())
    assert usage["daily"].spent_nanos == 5_000 + 27_000 * 2
    assert usage["daily"].requests == 3
    assert usage["daily"].prompt_tokens == 300
    assert usage["monthly"].spent_nanos == usage["none"].spent_nanos == 59_000
    user = await current_usage(store.engine, "user", "u1", START.date())
    team = await current_usage(store.engine, "team", "t1", START.date())
    assert user["weekly"].spent_nanos == team["weekly"].spent_nanos == 5_000
    assert user["weekly"].requests == 1


async def test_counters_follow_the_request_time_into_periods(store: SpendStore) -> None:
    # Monday, Sunday of the same week, the next Monday, and the 1st of the next month.
    await store.write(
        [
            make_record("mon", started_at=MONDAY),
            make_record("sun", started_at=MONDAY + 6 * DAY),
            make_record("next-mon", started_at=MONDAY + 7 * DAY),
            make_record("april", started_at=MONDAY + 30 * DAY),  # 2026-04-01
        ]
    )
    async with store.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(spend_counters.c.period, spend_counters.c.period_start,
                       spend_counters.c.requests)
            )
        ).all()  # fmt: skip
    counters = {(period, start): requests for period, start, requests in rows}
    assert counters[("weekly", date(2026, 3, 2))] == 2
    assert counters[("weekly", date(2026, 3, 9))] == 1
    assert counters[("monthly", date(2026, 3, 1))] == 3
    assert counters[("monthly", date(2026, 4, 1))] == 1
    assert counters[("daily", date(2026, 3, 8))] == 1
    assert counters[("none", date(1970, 1, 1))] == 4


async def test_spend_reports(store: SpendStore) -> None:
    await store.write(
        [
            make_record("a1", key_id="ka", user_id="alice", team_id="red", cost_nanos=100),
            make_record("a2", key_id="ka", user_id="alice", team_id="red", cost_nanos=300,
                        model_group="gpt-4o", status="timeout", http_status=504),
            make_record("b1", key_id="kb", user_id="bob", cost_nanos=50,
                        started_at=MONDAY + DAY, reasoning_tokens=7, cached_tokens=40),
            make_record("old", key_id="kb", cost_nanos=10_000, started_at=MONDAY - 3 * DAY),
        ]
    )  # fmt: skip
    end = START + timedelta(days=2)
    by_key = await spend_by(store.engine, "key", START, end)
    assert [(r.group, r.cost_nanos, r.requests, r.errors) for r in by_key] == [
        ("ka", 400, 2, 1),
        ("kb", 50, 1, 0),
    ]
    by_team = await spend_by(store.engine, "team", START, end)
    assert {r.group: r.cost_nanos for r in by_team} == {"red": 400, None: 50}
    by_model = await spend_by(store.engine, "model", START, end, user_id="alice")
    assert [(r.group, r.cost_nanos) for r in by_model] == [("gpt-4o", 300), ("gpt-4o-mini", 100)]
    by_day = await spend_by(store.engine, "day", START - timedelta(days=7), end, key_id="kb")
    assert [(r.group, r.cost_nanos) for r in by_day] == [
        ("2026-02-27", 10_000),
        ("2026-03-03", 50),
    ]
    (bob,) = await spend_by(store.engine, "user", START + timedelta(days=1), end, key_id="kb")
    assert (bob.group, bob.cached_tokens, bob.reasoning_tokens) == ("bob", 40, 7)
    # Half-open range: a request at exactly `end` is not in it.
    assert await spend_by(store.engine, "key", START, START + timedelta(hours=10)) == []


async def test_overlong_names_are_cut_to_fit_rather_than_failing_the_batch(
    store: SpendStore,
) -> None:
    long = "m" * 500
    assert await store.write([make_record("long", model_group=long, deployment=long)]) == 1
    async with store.engine.connect() as conn:
        stored = (await conn.execute(select(spend_ledger.c.model_group))).scalar()
    assert stored == "m" * 200

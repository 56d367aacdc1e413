"""The gateway's own rate limits and budgets on virtual keys, through the real HTTP app with
the openai SDK: 429s with OpenAI's headers, team limits shared by the team's keys, a budget
under 50 concurrent requests, and the known cost of a known usage on the key's ledger rows."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from tests.conftest import Gateway, GatewayFactory, SimFactory
from tests.governance.helpers import (
    HELLO,
    TOKEN_NANOS,
    admin,
    ledger_cost,
    ledger_rows,
    models,
    new_key,
    priced,
    sqlite,
)


async def test_key_rpm_refuses_with_openai_headers(
    make_gateway: GatewayFactory, make_sim: SimFactory, tmp_path: Path
) -> None:
    sim = await make_sim()
    gw = await make_gateway(models(sim, "gpt-4o-mini"), sections={"database": sqlite(tmp_path)})
    key, key_id = await new_key(gw)
    await admin(gw, "PUT", f"/admin/keys/{key_id}/limits", {"rpm": 2})
    async with gw.client(api_key=key) as client:
        for remaining in ("1", "0"):
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=HELLO
            )
            assert raw.headers["x-ratelimit-limit-requests"] == "2"
            assert raw.headers["x-ratelimit-remaining-requests"] == remaining
        try:
            await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
            raise AssertionError("the third request in a minute passed an rpm of 2")
        except openai.RateLimitError as exc:
            limited = exc
    assert limited.code == "rate_limit_exceeded"
    assert int(limited.response.headers["retry-after"]) >= 1
    assert limited.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert "reset" in " ".join(limited.response.headers)
    assert sum(sim.counts.values()) == 2
    # The refusal has its ledger row: who was refused, for which model, billed nothing.
    refused = [r for r in await ledger_rows(gw, 3) if r["status"] != "ok"]
    assert [r["request_id"] for r in refused] == [limited.response.headers["x-request-id"]]
    assert refused[0]["status"] == "rate_limit_exceeded" and refused[0]["http_status"] == 429
    assert refused[0]["key_id"] == key_id and refused[0]["model_group"] == "gpt-4o-mini"
    assert refused[0]["cost_nanos"] == 0 and refused[0]["deployment"] == ""


async def test_a_changed_limit_applies_to_the_next_request(
    make_gateway: GatewayFactory, make_sim: SimFactory, tmp_path: Path
) -> None:
    """The key's cells are in use when the admin lowers its limit: the next request is
    counted by the new figure, from the same state (GCRA's: the time the key's requests
    have taken, here 6 s of a minute)."""
    sim = await make_sim()
    gw = await make_gateway(models(sim, "gpt-4o-mini"), sections={"database": sqlite(tmp_path)})
    key, key_id = await new_key(gw)
    await admin(gw, "PUT", f"/admin/keys/{key_id}/limits", {"rpm": 10})
    async with gw.client(api_key=key) as client:
        chat = client.chat.completions.with_raw_response
        raw = await chat.create(model="gpt-4o-mini", messages=HELLO)
        assert raw.headers["x-ratelimit-remaining-requests"] == "9"
        await admin(gw, "PUT", f"/admin/keys/{key_id}/limits", {"rpm": 2})
        raw = await chat.create(model="gpt-4o-mini", messages=HELLO)  # 6 s + 30 s taken
        assert raw.headers["x-ratelimit-limit-requests"] == "2"
        assert raw.headers["x-ratelimit-remaining-requests"] == "0"
        with pytest.raises(openai.RateLimitError, match="Limit 2"):
            await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert sum(sim.counts.values()) == 2


async def test_team_tpm_is_shared_by_the_team_and_settled_with_real_usage(
    make_gateway: GatewayFactory, make_sim: SimFactory, tmp_path: Path
) -> None:
    sim = await make_sim(completion_tokens=8, latency="300ms")
    gw = await make_gateway(models(sim, "gpt-4o-mini"), sections={"database": sqlite(tmp_path)})
    await admin(gw, "POST", "/admin/teams", {"id": "ml", "name": "ML"})
    await admin(gw, "POST", "/admin/users", {"id": "ada", "team_id": "ml"})
    await admin(gw, "PUT", "/admin/teams/ml/limits", {"tpm": 1000})
    first, _ = await new_key(gw, user_id="ada")  # in the team through its user
    second, _ = await new_key(gw, team_id="ml")
    ask: dict[str, Any] = {"model": "gpt-4o-mini", "messages": HELLO, "max_tokens": 600}
    async with gw.client(api_key=first) as a, gw.client(api_key=second) as b:

        async def one(client: openai.AsyncOpenAI) -> openai.RateLimitError | None:
            try:
                raw = await client.chat.completions.with_raw_response.create(**ask)
            except openai.RateLimitError as exc:
                return exc
            assert raw.headers["x-ratelimit-limit-tokens"] == "1000"
            return None

        # Two estimates of ~610 tokens in flight at once do not fit the team's 1000.
        results = await asyncio.gather(one(a), one(b))
        refused = [r for r in results if r is not None]
        assert len(refused) == 1 and refused[0].body["type"] == "tokens"  # type: ignore[index]
        await asyncio.sleep(0.1)
        # The admitted one was settled with its real usage (~20 tokens): room again.
        assert await one(b) is None


async def test_budget_under_50_concurrent_requests_and_cost_on_the_ledger(
    make_gateway: GatewayFactory, make_sim: SimFactory, tmp_path: Path
) -> None:
    sim = await make_sim(completion_tokens=16, latency="200ms")
    gw = await make_gateway(
        priced(sim),
        sections={"database": sqlite(tmp_path)},
    )
    key, key_id = await new_key(gw)
    limit_nanos = 200 * TOKEN_NANOS  # $0.20: ten reservations of max_tokens=20 at once
    await admin(gw, "PUT", f"/admin/keys/{key_id}/budgets", {"period": "daily", "limit_usd": "0.2"})
    ok, over = await _burst(gw, key, 50)
    assert ok >= 10 and over > 0 and ok + over == 50
    for _ in range(20):  # then one at a time until the budget refuses
        done, _ = await _burst(gw, key, 1)
        if not done:
            over += 1
            break
        ok += 1
    spent = await ledger_cost(gw, key_id, ok, refused=over)  # a row for each refusal too
    assert spent == ok * 16 * TOKEN_NANOS  # the known usage at the known price, per row
    assert limit_nanos - 20 * TOKEN_NANOS < spent <= limit_nanos  # used, never overshot
    usage = await admin(gw, "GET", f"/admin/keys/{key_id}/usage")
    daily = next(p for p in usage["periods"] if p["period"] == "daily")
    assert daily["spent_nanos"] == spent and daily["requests"] == ok + over  # refused too
    # /metrics counts what was billed: a reservation (max_tokens at the price, refused
    # ones included) is a quote, not spend.
    async with aiohttp.ClientSession() as session, session.get(f"{gw.url}/metrics") as resp:
        metrics = await resp.text()
    assert f'lockgate_spend_usd_total{{deployment="d"}} {spent / 10**9}' in metrics


async def _burst(gw: Gateway, key: str, n: int) -> tuple[int, int]:
    async with gw.client(api_key=key) as client:

        async def one() -> bool:
            try:
                await client.chat.completions.create(
                    model="gpt-4o-mini", messages=HELLO, max_tokens=20
                )
            except openai.RateLimitError as exc:
                if exc.code != "budget_exceeded":
                    raise
                return False
            return True

        results = await asyncio.gather(*(one() for _ in range(n)))
    await asyncio.sleep(0.05)  # settles are spawned when each request ends
    return sum(results), n - sum(results)


async def test_user_limit_and_key_model_limit(
    make_gateway: GatewayFactory, make_sim: SimFactory, tmp_path: Path
) -> None:
    sim = await make_sim()
    gw = await make_gateway(
        models(sim, "gpt-4o-mini", "big"), sections={"database": sqlite(tmp_path)}
    )
    await admin(gw, "POST", "/admin/users", {"id": "bob"})
    await admin(gw, "PUT", "/admin/users/bob/limits", {"rpm": 3})
    one, one_id = await new_key(gw, user_id="bob")
    two, _ = await new_key(gw, user_id="bob")
    await admin(gw, "PUT", f"/admin/keys/{one_id}/limits", {"model": "big", "rpm": 1})

    async def refusal(key: str, model: str) -> str | None:
        async with gw.client(api_key=key) as client:
            try:
                await client.chat.completions.create(model=model, messages=HELLO)
            except openai.RateLimitError as exc:
                return exc.message
            return None

    assert await refusal(one, "big") is None
    refused = await refusal(one, "big")  # key+model: 1 per minute for "big" only
    assert refused is not None and "of this key for model big" in refused
    assert await refusal(one, "gpt-4o-mini") is None
    assert await refusal(two, "gpt-4o-mini") is None  # the user's third admitted request
    refused = await refusal(two, "gpt-4o-mini")
    assert refused is not None and "of this user" in refused


async def test_with_redis_a_refusal_gives_back_what_the_other_check_took(
    make_gateway: GatewayFactory,
    make_sim: SimFactory,
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
) -> None:
    """With Redis the rate limits and the budget are checked at once (one round trip);
    when the limit refuses, the reservation the budget made meanwhile is released."""
    sim = await make_sim(completion_tokens=16)
    gw = await make_gateway(
        priced(sim),
        sections={
            "database": sqlite(tmp_path),
            "redis": {"url": redis_url, "prefix": redis_prefix},
        },
    )
    key, key_id = await new_key(gw)
    await admin(gw, "PUT", f"/admin/keys/{key_id}/budgets", {"limit_usd": "0.1"})
    await admin(gw, "PUT", f"/admin/keys/{key_id}/limits", {"tpm": 40})

    async def ask(max_tokens: int) -> str:
        async with gw.client(api_key=key) as client:
            try:
                await client.chat.completions.create(
                    model="gpt-4o-mini", messages=HELLO, max_tokens=max_tokens
                )
            except openai.RateLimitError as exc:
                return str(exc.code)
        await asyncio.sleep(0.05)  # settles linger a few ms before they reach Redis
        return "ok"

    assert await ask(20) == "ok"  # $0.016 spent
    # Over the 40 tokens a minute, while the budget has room for its $0.05: refused, and
    # the $0.05 the budget reserved meanwhile must not stay held.
    assert await ask(50) == "rate_limit_exceeded"
    await admin(gw, "PUT", f"/admin/keys/{key_id}/limits", {"tpm": 10**6})
    assert await ask(80) == "ok"  # $0.016 + $0.08 fits in $0.1 only if it was released
    # Both refuse (too many tokens for a tpm of 1, and $0.032 + $0.09 > $0.1): the rate
    # limit is the one reported, as when they ran one after the other.
    await admin(gw, "PUT", f"/admin/keys/{key_id}/limits", {"tpm": 1})
    assert await ask(90) == "rate_limit_exceeded"

"""The request log through the real HTTP app with the openai SDK: one record per request
for success, error, retry, fallback, cache hit and stream, read back through
`/admin/requests` with filters and paging; bodies kept only where enabled, redacted."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from lockgate.storage.schema import spend_ledger
from tests.conftest import MASTER_KEY, Gateway, GatewayFactory, SimFactory, dep, wait_until
from tests.storage.records import make_record

HELLO = [{"role": "user", "content": "hello"}]
PII = (
    "I am jane.doe@example.com, call +44 20 7946 0958, card 4111-1111-1111-1111, "
    "my key is sk-live-abcdefghijklmnop"
)
SECRETS = ("jane.doe@example.com", "7946 0958", "4111-1111-1111-1111", "sk-live-abcdefghijklmnop")


async def _gateway(make_gateway: GatewayFactory, make_sim: SimFactory, tmp_path: Path) -> Gateway:
    sim = await make_sim()
    broken = await make_sim(error_rates={500: 1.0})
    return await make_gateway(
        [
            {"name": "plain", "deployments": [dep(sim, "primary")]},
            {
                "name": "flaky",
                "strategy": "ordered",
                "deployments": [dep(broken, "down"), dep(sim, "backup")],
            },
            {"name": "broken", "deployments": [dep(broken, "dead")], "fallbacks": ["plain"]},
            {"name": "dead", "deployments": [dep(broken, "dead-too")]},
            {"name": "private", "deployments": [dep(sim, "private")], "log_bodies": True},
        ],
        retry={"retries": 1},
        sections={
            "cache": {},
            "database": {
                "url": f"sqlite:///{tmp_path}/lockgate.db",
                "spool_path": None,
                "flush_interval": 0.02,
            },
        },
    )


def _rid(name: str) -> dict[str, Any]:
    return {"extra_headers": {"x-request-id": name}}


async def _admin(gw: Gateway, path: str, key: str = MASTER_KEY) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession() as http, http.get(gw.url + path, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_records_for_each_case_through_the_admin_api(
    make_gateway: GatewayFactory, make_sim: SimFactory, tmp_path: Path
) -> None:
    gw = await _gateway(make_gateway, make_sim, tmp_path)

    def rid(name: str) -> dict[str, Any]:
        return {"extra_headers": {"x-request-id": name}}

    async with gw.client() as client:
        await client.chat.completions.create(model="plain", messages=HELLO, **rid("ok"))
        raw = await client.chat.completions.with_raw_response.create(
            model="flaky", messages=HELLO, **rid("retried")
        )
        assert raw.headers["x-lockgate-attempts"] == "2"
        raw = await client.chat.completions.with_raw_response.create(
            model="broken", messages=HELLO, **rid("fell-back")
        )
        assert raw.headers["x-lockgate-fallback"] == "true"
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="dead", messages=HELLO, **rid("failed"))
        for name in ("cache-miss", "cache-hit"):
            raw = await client.chat.completions.with_raw_response.create(
                model="plain", messages=[{"role": "user", "content": "cache me"}],
                temperature=0, **rid(name),
            )  # fmt: skip
        assert raw.headers["x-lockgate-cache"] == "hit"
        stream = await client.chat.completions.create(
            model="plain", messages=HELLO, stream=True, **rid("streamed")
        )
        async for _ in stream:
            pass
        await client.chat.completions.create(
            model="private", messages=[{"role": "user", "content": PII}], **rid("private")
        )

    db = gw.state.database
    assert db is not None
    await wait_until(lambda: db.ledger.counts["written"] >= 8, 10)

    status, listing = await _admin(gw, "/admin/requests?limit=100")
    assert status == 200 and listing["next_cursor"] is None
    rows = {r["request_id"]: r for r in listing["data"]}
    assert set(rows) == {
        "ok", "retried", "fell-back", "failed", "cache-miss", "cache-hit", "streamed", "private",
    }  # fmt: skip
    ok = rows["ok"]
    assert (ok["status"], ok["attempts"], ok["fallback"], ok["error_type"]) == (
        "ok",
        1,
        False,
        None,
    )
    assert ok["cache_status"] == "bypass" and ok["ttft_ms"] is None and ok["prompt_tokens"] > 0
    assert "bodies" not in ok
    retried = rows["retried"]
    assert (retried["attempts"], retried["deployment"], retried["status"]) == (2, "backup", "ok")
    fell = rows["fell-back"]
    assert (fell["fallback"], fell["model_group"], fell["deployment"]) == (True, "plain", "primary")
    failed = rows["failed"]
    assert (failed["status"], failed["http_status"], failed["cost_nanos"]) == ("upstream", 502, 0)
    assert failed["error_type"] in ("UpstreamError", "AllAttemptsFailed")
    assert (rows["cache-miss"]["cache_status"], rows["cache-hit"]["cache_status"]) == (
        "miss", "hit",
    )  # fmt: skip
    assert rows["cache-hit"]["cache_hit"] is True
    assert rows["streamed"]["stream"] and rows["streamed"]["ttft_ms"] is not None

    # Filters and paging.
    _, errors = await _admin(gw, "/admin/requests?status=error")
    assert [r["request_id"] for r in errors["data"]] == ["failed"]
    _, plain = await _admin(gw, "/admin/requests?model=plain")
    assert {r["request_id"] for r in plain["data"]} == {
        "ok", "fell-back", "cache-miss", "cache-hit", "streamed",
    }  # fmt: skip
    _, none = await _admin(gw, "/admin/requests?key=someone-else")
    assert none["data"] == []
    paged: list[str] = []
    path = "/admin/requests?limit=3"
    while True:
        _, page = await _admin(gw, path)
        assert len(page["data"]) <= 3
        paged += [r["request_id"] for r in page["data"]]
        if page["next_cursor"] is None:
            break
        path = f"/admin/requests?limit=3&cursor={page['next_cursor']}"
    assert paged == [r["request_id"] for r in listing["data"]]
    _, future = await _admin(gw, "/admin/requests?since=2999-01-01T00:00:00Z")
    assert future["data"] == []

    # Bodies: only for the group that asked, and redacted before storage.
    status, private = await _admin(gw, "/admin/requests/private")
    assert status == 200
    stored = private["bodies"]
    content = stored["request"]["messages"][0]["content"]
    assert "[EMAIL]" in content and "[PHONE]" in content and "[CARD]" in content
    assert stored["response"]["choices"][0]["message"]["role"] == "assistant"
    _, plain_one = await _admin(gw, "/admin/requests/ok")
    assert plain_one["bodies"] is None
    async with db.engine.connect() as conn:
        raw_text = str((await conn.execute(select(spend_ledger.c.bodies))).all())
    for secret in (*SECRETS, MASTER_KEY):
        assert secret not in raw_text

    # Errors: unknown id, bad input, and no master key.
    status, body = await _admin(gw, "/admin/requests/nope")
    assert status == 404 and body["error"]["type"]
    status, body = await _admin(gw, "/admin/requests?cursor=zzz")
    assert status == 400 and body["error"]["param"] == "cursor"
    status, body = await _admin(gw, "/admin/requests?limit=0")
    assert status == 400 and body["error"]["param"] == "limit"
    status, body = await _admin(gw, "/admin/requests", key="sk-wrong")
    assert status == 401 and "sk-wrong" not in str(body)

    # The same traffic in the metrics, under the GenAI convention names.
    async with aiohttp.ClientSession() as http, http.get(f"{gw.url}/metrics") as resp:
        text = await resp.text()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    attrs = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "openai"}
    flaky = {**attrs, "gen_ai_request_model": "flaky"}
    name = "gen_ai_client_operation_duration_seconds_count"
    assert value(name, **flaky, deployment="down", error_type="upstream") == 1
    assert value(name, **flaky, deployment="backup", error_type="") == 1
    plain_attrs = {**attrs, "gen_ai_request_model": "plain", "deployment": "primary"}
    assert value("gen_ai_server_time_to_first_token_seconds_count", **plain_attrs) == 1
    assert value("gen_ai_client_token_usage_count", **plain_attrs, gen_ai_token_type="input") >= 3
    assert value("gen_ai_client_token_usage_sum", **plain_attrs, gen_ai_token_type="output") > 0
    assert value("lockgate_retries_total", model="flaky") == 1
    assert value("lockgate_fallbacks_total", model="broken", fallback="plain") == 1
    assert value("lockgate_served_requests_total", model="plain", status="ok", cache="hit") == 1
    assert (
        value("lockgate_served_requests_total", model="dead", status="upstream", cache="bypass")
        == 1
    )
    assert value("lockgate_cost_usd_total", model="plain", deployment="primary") > 0


async def test_retention_runs_in_the_background(
    make_gateway: GatewayFactory, make_sim: SimFactory, tmp_path: Path
) -> None:
    sim = await make_sim()
    gw = await make_gateway(
        [{"name": "plain", "deployments": [dep(sim, "primary")]}],
        sections={
            "database": {"url": f"sqlite:///{tmp_path}/lockgate.db", "spool_path": None,
                         "flush_interval": 0.02},
            "request_log": {"retention_days": 1, "retention_interval": 0.05},
        },
    )  # fmt: skip
    db = gw.state.database
    assert db is not None
    old = make_record("ancient", started_at=time.time() - 3 * 86_400)
    await db.spend.write([old])
    async with gw.client() as client:
        await client.chat.completions.create(model="plain", messages=HELLO, **_rid("fresh"))
    await wait_until(lambda: db.ledger.counts["written"] >= 1, 10)

    async def ids() -> set[str]:
        async with db.engine.connect() as conn:
            return set((await conn.execute(select(spend_ledger.c.request_id))).scalars())

    for _ in range(200):
        if await ids() == {"fresh"}:
            break
        await asyncio.sleep(0.02)
    assert await ids() == {"fresh"}

"""The dashboard's JSON endpoints under /ui/api/ through the real app: the master key only,
series and percentiles that match the traffic sent, paging, one request's detail, budgets,
the in-process view; no secrets in any answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tests.conftest import MASTER_KEY, PROVIDER_KEY, GatewayFactory, SimFactory, dep
from tests.integration.dashboard_traffic import BUDGET_NANOS, Traffic, traffic_gateway

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


async def get(traffic: Traffic, path: str, headers: dict[str, str] | None = None) -> Any:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{traffic.gw.url}{path}", headers=AUTH if headers is None else headers) as r,
    ):
        body = await r.read()
        assert PROVIDER_KEY not in body.decode()
        assert MASTER_KEY not in body.decode()
        return r.status, orjson.loads(body) if body.startswith((b"{", b"[")) else body


async def test_dashboard_api_reports_the_traffic(
    make_gateway: GatewayFactory, make_sim: SimFactory, tmp_path: Path
) -> None:
    t = await traffic_gateway(make_gateway, make_sim, tmp_path)
    total = t.ok + t.errors

    status, body = await get(t, "/ui/api/whoami", headers={})
    assert status == 401 and body["error"]["code"] == "missing_api_key"
    status, body = await get(t, "/ui/api/series", headers={"Authorization": "Bearer nope"})
    assert status == 401 and body["error"]["type"]
    status, who = await get(t, "/ui/api/whoami")
    assert status == 200 and "gpt-4o" in who["models"] and who["database"] is True

    status, series = await get(t, "/ui/api/series?since=3600&by=model")
    assert status == 200 and series["bucket"] == 30
    points = series["points"]
    assert sum(p["requests"] for p in points) == total
    assert sum(p["errors"] for p in points) == t.errors
    assert sum(p["rate_limited"] for p in points) == t.limited == 2
    assert sum(p["cache_hits"] for p in points) == 1
    assert sum(p["cost_nanos"] for p in points) > 0
    assert all(p["t"] % 30 == 0 for p in points)
    by_model = {p["group"] for p in points}
    assert {"gpt-4o-mini", "gpt-4o", "broken", "limited"} <= by_model
    _, by_key = await get(t, "/ui/api/series?by=key")
    assert {p["group"] for p in by_key["points"]} == {"master"}

    _, only = await get(t, "/ui/api/series?model=gpt-4o")
    assert {p["group"] for p in only["points"]} == {"gpt-4o"}
    assert sum(p["requests"] for p in only["points"]) == 3

    _, lat = await get(t, "/ui/api/latency")
    models = {m["model"]: m for m in lat["models"]}
    # Answered, not from the cache: 6 + 3 (+ the fallback's row).
    assert models["gpt-4o-mini"]["count"] >= 6 and models["gpt-4o"]["count"] == 3
    assert 10 <= models["gpt-4o-mini"]["p50"] <= models["gpt-4o-mini"]["p99"]
    assert models["gpt-4o"]["p50"] >= 20  # streams: 20 ms to the first token
    assert {d["deployment"] for d in lat["deployments"]} >= {"primary", "secondary"}
    assert lat["series"] and all(s["p50"] <= s["p95"] <= s["p99"] for s in lat["series"])

    _, page = await get(t, "/ui/api/recent?limit=5")
    assert page["total"] == total and len(page["rows"]) == 5
    _, page2 = await get(t, "/ui/api/recent?limit=5&offset=5")
    seen = {r["request_id"] for r in page["rows"]} | {r["request_id"] for r in page2["rows"]}
    assert len(seen) == 10
    _, errors = await get(t, "/ui/api/recent?status=error")
    assert errors["total"] == t.errors
    assert {r["http_status"] for r in errors["rows"]} >= {429}

    status, row = await get(t, f"/ui/api/requests/{t.ids[6]}")
    assert status == 200 and row["cache_hit"] is True and row["model_group"] == "gpt-4o-mini"
    assert row["created_at"].endswith("+00:00") and row["key_id"] == "master"
    status, missing = await get(t, "/ui/api/requests/nope")
    assert status == 404 and missing["error"]["type"]

    _, spent = await get(t, "/ui/api/budgets")
    [budget] = spent["budgets"]
    assert budget["scope_id"] == "master" and budget["limit_nanos"] == BUDGET_NANOS
    assert budget["spent_nanos"] == sum(p["cost_nanos"] for p in points)
    assert budget["used"] == budget["spent_nanos"] / BUDGET_NANOS

    _, live = await get(t, "/ui/api/live")
    ttft = {d["deployment"]: d for d in live["ttft"]}
    assert ttft["secondary"]["count"] == 3 and ttft["secondary"]["p50_ms"] >= 20
    per_model = {m["model"]: m for m in live["models"]}
    assert per_model["fallback-demo"]["fallbacks"] == 1
    assert per_model["limited"]["rate_limited_rate"] == 1.0
    assert live["cache"]["hits"] == 1 and live["cache"]["saved_usd"] > 0
    assert {c["deployment"] for c in live["circuits"]} >= {"primary", "down", "throttled"}

    status, bad = await get(t, "/ui/api/series?since=abc")
    assert status == 400 and bad["error"]["param"] == "since"
    status, bad = await get(t, "/ui/api/series?model=unknown")
    assert status == 400


async def test_page_and_assets_are_served_without_a_key(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    sim = await make_sim()
    gw = await make_gateway([{"name": "m", "deployments": [dep(sim, "a")]}])
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gw.url}/ui") as page:
            html = await page.text()
            assert page.status == 200 and page.content_type == "text/html"
        assert "/ui/static/charts.js" in html and "http" not in html.replace("http-equiv", "")
        for name, kind in (("app.js", "application/javascript"), ("style.css", "text/css")):
            async with http.get(f"{gw.url}/ui/static/{name}") as asset:
                assert asset.status == 200 and asset.content_type == kind
                assert "cdn" not in (await asset.text()).lower()
        async with http.get(f"{gw.url}/ui/static/../app.py") as escape:
            assert escape.status == 404
        # No database configured: the ledger endpoints say so; the live view still works.
        async with http.get(f"{gw.url}/ui/api/series", headers=AUTH) as none:
            assert none.status == 404
        async with http.get(f"{gw.url}/ui/api/live", headers=AUTH) as live:
            assert live.status == 200

"""The admin API over HTTP: users and teams, budgets and limits per scope, spend reports,
current usage, and an OpenAPI document that lists every admin route."""

from __future__ import annotations

from pathlib import Path

from lockgate.api.admin import ROUTES
from tests.conftest import GatewayFactory, SimFactory, wait_until
from tests.governance.helpers import HELLO, admin, call, models, new_key, sqlite


async def test_openapi_lists_every_admin_route(
    make_gateway: GatewayFactory, make_sim: SimFactory, tmp_path: Path
) -> None:
    sim = await make_sim()
    gw = await make_gateway(models(sim, "gpt-4o-mini"), sections={"database": sqlite(tmp_path)})
    doc = await admin(gw, "GET", "/admin/openapi.json")
    assert doc["openapi"].startswith("3.")
    registered = {
        (r.method, r.resource.canonical)
        for r in gw.app.router.routes()
        if r.resource is not None and r.resource.canonical.startswith("/admin/")
        and r.method != "HEAD" and "cache" not in r.resource.canonical
        and r.resource.canonical != "/admin/openapi.json"
    }  # fmt: skip
    assert len(registered) == len(ROUTES) > 20
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    for method, path in registered:
        plain = path.replace("{kind:keys|users|teams}", "{kind}")
        assert (method, plain) in documented, (method, path)
    create = doc["paths"]["/admin/keys"]["post"]
    schema_ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert "models" in doc["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]["properties"]
    assert "key" in doc["components"]["schemas"]["KeyCreated"]["properties"]


async def test_users_teams_settings_usage_and_spend_reports(
    make_gateway: GatewayFactory, make_sim: SimFactory, tmp_path: Path
) -> None:
    sim = await make_sim(completion_tokens=5)
    gw = await make_gateway(models(sim, "gpt-4o-mini"), sections={"database": sqlite(tmp_path)})
    team = await admin(gw, "POST", "/admin/teams", {"id": "ml", "name": "ML"})
    assert team["name"] == "ML"
    status, body = await call(gw, "POST", "/admin/teams", {"id": "ml", "name": "again"})
    assert status == 400 and body["error"]["code"] == "team_conflict"
    await admin(gw, "POST", "/admin/users", {"id": "ada", "email": "a@x.io", "team_id": "ml"})
    await admin(gw, "PATCH", "/admin/users/ada", {"name": "Ada"})
    assert (await admin(gw, "GET", "/admin/users/ada"))["name"] == "Ada"
    assert [u["id"] for u in (await admin(gw, "GET", "/admin/users"))["data"]] == ["ada"]

    settings = await admin(gw, "PUT", "/admin/teams/ml/budgets",
                           {"period": "monthly", "limit_usd": "12.5", "alerts": [0.5]})  # fmt: skip
    assert settings["budgets"][0]["limit_nanos"] == 12_500_000_000
    settings = await admin(gw, "PUT", "/admin/users/ada/limits", {"model": "gpt-4o-mini", "rpm": 9})
    assert settings["limits"][0]["rpm"] == 9 and settings["limits"][0]["model"] == "gpt-4o-mini"
    await admin(gw, "DELETE", "/admin/users/ada/limits/gpt-4o-mini")
    assert (await admin(gw, "GET", "/admin/users/ada/settings"))["limits"] == []

    key, key_id = await new_key(gw, user_id="ada")
    async with gw.client(api_key=key) as client:
        for _ in range(3):
            await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    db = gw.state.database
    assert db is not None
    await wait_until(lambda: db.ledger.counts["written"] >= 3, 10)
    for group_by, group in (("key", key_id), ("user", "ada"), ("team", "ml"),
                            ("model", "gpt-4o-mini")):  # fmt: skip
        report = await admin(gw, "GET", f"/admin/spend?group_by={group_by}")
        assert [(r["group"], r["requests"]) for r in report["data"]] == [(group, 3)]
        assert report["data"][0]["completion_tokens"] == 15
    days = await admin(gw, "GET", "/admin/spend?group_by=day&start=2020-01-01&end=2020-02-01")
    assert days["data"] == []
    status, body = await call(gw, "GET", "/admin/spend?group_by=planet")
    assert status == 400 and body["error"]["param"] == "group_by"
    usage = await admin(gw, "GET", "/admin/teams/ml/usage")
    assert {p["period"]: p["requests"] for p in usage["periods"]}["monthly"] == 3

    await admin(gw, "DELETE", "/admin/users/ada")
    status, _ = await call(gw, "GET", "/admin/users/ada")
    assert status == 404

"""What a key's metadata switches on: an admin key reads the dashboard (and nothing else of
the admin API); a key with log_bodies has its requests' bodies kept, redacted."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import GatewayFactory, SimFactory, wait_until
from tests.governance.helpers import admin, call, models, new_key, sqlite


async def test_an_admin_key_reads_the_dashboard_but_not_the_admin_api(
    make_gateway: GatewayFactory, make_sim: SimFactory, tmp_path: Path
) -> None:
    sim = await make_sim()
    gw = await make_gateway(models(sim, "gpt-4o-mini"), sections={"database": sqlite(tmp_path)})
    admin_key, _ = await new_key(gw, metadata={"admin": True})
    plain_key, _ = await new_key(gw)
    status, _ = await call(gw, "GET", "/ui/api/whoami", key=admin_key)
    assert status == 200
    status, body = await call(gw, "GET", "/ui/api/whoami", key=plain_key)
    assert status == 403 and "admin key" in body["error"]["message"]
    status, _ = await call(gw, "GET", "/admin/keys", key=admin_key)
    assert status == 403


async def test_a_key_with_log_bodies_keeps_its_bodies_redacted(
    make_gateway: GatewayFactory, make_sim: SimFactory, tmp_path: Path
) -> None:
    sim = await make_sim()
    gw = await make_gateway(models(sim, "gpt-4o-mini"), sections={"database": sqlite(tmp_path)})
    logged, _ = await new_key(gw, metadata={"log_bodies": True})
    quiet, _ = await new_key(gw)
    ids = {}
    for name, key in (("logged", logged), ("quiet", quiet)):
        async with gw.client(api_key=key) as client:
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "mail me at jane.doe@example.com"}],
            )
        ids[name] = raw.headers["x-request-id"]
    db = gw.state.database
    assert db is not None
    await wait_until(lambda: db.ledger.counts["written"] >= 2, 10)
    logged_row = await admin(gw, "GET", f"/admin/requests/{ids['logged']}")
    quiet_row = await admin(gw, "GET", f"/admin/requests/{ids['quiet']}")
    stored = str(logged_row["bodies"])
    assert "mail me at [EMAIL]" in stored and "jane.doe" not in stored
    assert quiet_row["bodies"] is None

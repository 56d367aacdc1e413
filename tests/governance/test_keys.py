"""Virtual keys through the real HTTP app: issued by the admin API, used with the openai
SDK, refused at once when revoked, limited to their models, expiring, rotated with grace."""

from __future__ import annotations

import asyncio
from pathlib import Path

import openai
import pytest
from sqlalchemy import event

from tests.conftest import Gateway, GatewayFactory, SimFactory
from tests.governance.helpers import HELLO, admin, call, models, new_key, sqlite


async def _chat(gw: Gateway, key: str, model: str = "gpt-4o-mini") -> str:
    async with gw.client(api_key=key) as client:
        answer = await client.chat.completions.create(model=model, messages=HELLO)
    return answer.choices[0].message.content or ""


async def test_key_lifecycle_create_use_list_revoke(
    make_gateway: GatewayFactory, make_sim: SimFactory, tmp_path: Path
) -> None:
    sim = await make_sim()
    gw = await make_gateway(models(sim, "gpt-4o-mini"), sections={"database": sqlite(tmp_path)})
    key, key_id = await new_key(gw, name="ci", metadata={"owner": "ci"})
    assert key.startswith("lg-")
    assert await _chat(gw, key)

    listed = await admin(gw, "GET", "/admin/keys")
    assert [k["id"] for k in listed["data"]] == [key_id]
    shown = await admin(gw, "GET", f"/admin/keys/{key_id}")
    assert key not in str(listed) and key not in str(shown)  # shown once, at creation
    assert shown["key_prefix"] == key[:10] and shown["metadata"] == {"owner": "ci"}

    await admin(gw, "POST", f"/admin/keys/{key_id}/revoke")
    with pytest.raises(openai.AuthenticationError) as refused:
        await _chat(gw, key)  # at once: the cached entry was dropped
    assert refused.value.code == "key_revoked"
    assert key not in str(refused.value.body)

    with pytest.raises(openai.AuthenticationError) as unknown:
        await _chat(gw, "lg-" + "x" * 43)
    assert unknown.value.code == "invalid_api_key"
    assert sum(sim.counts.values()) == 1  # refused keys never reach the upstream


async def test_allowed_models_expiry_and_rotation_grace(
    make_gateway: GatewayFactory, make_sim: SimFactory, tmp_path: Path
) -> None:
    sim = await make_sim()
    gw = await make_gateway(
        models(sim, "gpt-4o-mini", "big"), sections={"database": sqlite(tmp_path)}
    )
    key, key_id = await new_key(gw, models=["gpt-4o-mini"])
    assert await _chat(gw, key)
    with pytest.raises(openai.PermissionDeniedError) as denied:
        await _chat(gw, key, "big")
    assert denied.value.status_code == 403 and denied.value.code == "model_not_allowed"
    await admin(gw, "PATCH", f"/admin/keys/{key_id}", {"models": ["gpt-4o-mini", "big"]})
    assert await _chat(gw, key, "big")  # the change applies at once

    short, _ = await new_key(gw, expires_in=0.5)
    assert await _chat(gw, short)
    await asyncio.sleep(0.7)
    with pytest.raises(openai.AuthenticationError) as expired:
        await _chat(gw, short)
    assert expired.value.code == "key_expired"

    rotated = await admin(gw, "POST", f"/admin/keys/{key_id}/rotate", {"grace_seconds": 0.5})
    new = rotated["key"]
    assert new != key and rotated["allowed_models"] == ["gpt-4o-mini", "big"]
    assert await _chat(gw, key) and await _chat(gw, new)  # both during the grace period
    await asyncio.sleep(0.7)
    assert await _chat(gw, new)
    with pytest.raises(openai.AuthenticationError):
        await _chat(gw, key)
    old = await admin(gw, "GET", f"/admin/keys/{key_id}")
    assert old["replaced_by"] == rotated["id"]


async def test_admin_api_needs_the_master_key(
    make_gateway: GatewayFactory, make_sim: SimFactory, tmp_path: Path
) -> None:
    sim = await make_sim()
    gw = await make_gateway(models(sim, "gpt-4o-mini"), sections={"database": sqlite(tmp_path)})
    key, _ = await new_key(gw)
    status, body = await call(gw, "GET", "/admin/keys", key=None)
    assert status == 401 and body["error"]["code"] == "missing_api_key"
    status, body = await call(gw, "GET", "/admin/keys", key=key)
    assert status == 403 and body["error"]["type"] == "permission_error"
    status, body = await call(gw, "POST", "/admin/keys", {"models": "gpt-4o"})
    assert status == 400 and body["error"]["param"] == "models"
    status, body = await call(gw, "GET", "/admin/keys/key_nope")
    assert status == 404 and body["error"]["code"] == "key_not_found"


async def test_concurrent_misses_share_one_lookup(
    make_gateway: GatewayFactory, make_sim: SimFactory, tmp_path: Path
) -> None:
    sim = await make_sim(latency="50ms")
    gw = await make_gateway(models(sim, "gpt-4o-mini"), sections={"database": sqlite(tmp_path)})
    key, _ = await new_key(gw)
    db = gw.state.database
    assert db is not None
    lookups: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "FROM virtual_keys" in statement:
            lookups.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        answers = await asyncio.gather(*(_chat(gw, key) for _ in range(20)))
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", seen)
    assert all(answers)
    assert len(lookups) == 1  # the other 19 waited for the first one's lookup

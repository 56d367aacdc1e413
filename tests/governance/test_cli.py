"""`lockgate keys create|list|revoke|rotate` and `lockgate spend report`, run as processes
against a real gateway (keys) and its database (spend)."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import openai
import pytest

from tests.conftest import MASTER_KEY, Gateway, GatewayFactory, SimFactory, wait_until
from tests.governance.helpers import HELLO, models, sqlite


async def _lockgate(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lockgate", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _keys(gw: Gateway, *args: str) -> str:
    code, out, err = await _lockgate("keys", "--url", gw.url, "--master-key", MASTER_KEY, *args)
    assert code == 0, err
    return out


async def _chat(gw: Gateway, key: str) -> None:
    async with gw.client(api_key=key) as client:
        await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)


async def test_keys_cli_lifecycle_and_spend_report(
    make_gateway: GatewayFactory, make_sim: SimFactory, tmp_path: Path
) -> None:
    sim = await make_sim()
    database = sqlite(tmp_path)
    gw = await make_gateway(models(sim, "gpt-4o-mini"), sections={"database": database})
    out = await _keys(gw, "create", "--name", "cli", "--model", "gpt-4o-mini")
    key = re.search(r"key: (lg-\S+)", out)
    key_id = re.search(r"id:  (key_\w+)", out)
    assert key is not None and key_id is not None
    await _chat(gw, key[1])

    listing = await _keys(gw, "list")
    assert key_id[1] in listing and "active" in listing and key[1] not in listing

    rotated = await _keys(gw, "rotate", key_id[1], "--grace", "60")
    new_key = re.search(r"key: (lg-\S+)", rotated)
    new_id = re.search(r"id:  (key_\w+)", rotated)
    assert new_key is not None and new_id is not None
    await _chat(gw, new_key[1])
    await _chat(gw, key[1])  # in its grace period

    await _keys(gw, "revoke", new_id[1])
    with pytest.raises(openai.AuthenticationError):
        await _chat(gw, new_key[1])

    code, _, err = await _lockgate("keys", "--url", gw.url, "--master-key", "nope", "list")
    assert code == 1 and "401" in err

    db = gw.state.database
    assert db is not None
    await wait_until(lambda: db.ledger.counts["written"] >= 3, 10)
    config = tmp_path / "lockgate.yaml"
    await asyncio.to_thread(config.write_text, f"database:\n  url: {database['url']}\n")
    code, out, err = await _lockgate("spend", "report", "-c", str(config), "--by", "key")
    assert code == 0, err
    lines = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert lines[key_id[1]][2] == "2" and lines[new_id[1]][2] == "1"  # requests per key

"""Admin API calls and gateway configs shared by the governance tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import MASTER_KEY, Gateway, Simulator, dep

HELLO = [{"role": "user", "content": "hello"}]


def sqlite(tmp_path: Path, name: str = "lockgate") -> dict[str, Any]:
    return {
        "url": f"sqlite:///{tmp_path}/{name}.db",
        "spool_path": str(tmp_path / f"{name}.spool"),
        "flush_interval": 0.02,
    }


def models(sim: Simulator, *names: str) -> list[dict[str, Any]]:
    return [{"name": n, "deployments": [dep(sim, n, "gpt-4o-mini")]} for n in names]


async def call(
    gw: Gateway, method: str, path: str, body: Any = None, key: str | None = MASTER_KEY
) -> tuple[int, Any]:
    """One admin API call: (status, JSON body)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, gw.url + path, json=body, headers=headers) as resp,
    ):
        return resp.status, await resp.json()


async def admin(gw: Gateway, method: str, path: str, body: Any = None) -> Any:
    status, data = await call(gw, method, path, body)
    assert status in (200, 201), (status, data)
    return data


async def new_key(gw: Gateway, **options: Any) -> tuple[str, str]:
    """(the key, its id)."""
    created = await admin(gw, "POST", "/admin/keys", options)
    return created["key"], created["id"]

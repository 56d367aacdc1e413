"""`lockgate keys create|list|revoke|rotate`: a running gateway's admin API, from a shell.

Through the API rather than the database so that a revoke reaches every replica's key cache
at once (the gateway announces it); the master key comes from --master-key or
LOCKGATE_MASTER_KEY, the gateway from --url or LOCKGATE_URL.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

import aiohttp
import orjson

DEFAULT_URL = "http://127.0.0.1:4000"


def add_arguments(keys: argparse.ArgumentParser) -> None:
    keys.add_argument("--url", default=os.environ.get("LOCKGATE_URL", DEFAULT_URL))
    keys.add_argument("--master-key", default=os.environ.get("LOCKGATE_MASTER_KEY"))
    sub = keys.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="issue a key (printed once)")
    create.add_argument("--name")
    create.add_argument("--user")
    create.add_argument("--team")
    create.add_argument("--model", action="append", dest="models", help="allowed (repeat)")
    create.add_argument("--expires-in", type=float, help="seconds")
    create.add_argument("--metadata", help="a JSON object")
    sub.add_parser("list", help="list keys (never the keys themselves)")
    revoke = sub.add_parser("revoke", help="refuse a key from now on")
    revoke.add_argument("key_id")
    rotate = sub.add_parser("rotate", help="issue a replacement; the old key keeps a grace")
    rotate.add_argument("key_id")
    rotate.add_argument("--grace", type=float, default=3600.0, help="seconds (default 3600)")


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except (aiohttp.ClientError, OSError) as exc:
        print(f"cannot reach the gateway at {args.url}: {type(exc).__name__}", file=sys.stderr)
        return 1


async def _run(args: argparse.Namespace) -> int:
    if args.action == "create":
        body: dict[str, Any] = {"name": args.name, "user_id": args.user, "team_id": args.team,
                                "models": args.models, "expires_in": args.expires_in}  # fmt: skip
        if args.metadata:
            body["metadata"] = orjson.loads(args.metadata)
        status, data = await _call(args, "POST", "/admin/keys", body)
        if status == 201:
            print(
                f"id:  {data['id']}\nkey: {data['key']}\n(store the key now: it is not shown again)"
            )
    elif args.action == "list":
        status, data = await _call(args, "GET", "/admin/keys")
        if status == 200:
            print(f"{'id':<22} {'prefix':<11} {'name':<20} {'user':<14} {'team':<14} state")
            for k in data["data"]:
                state = (
                    "revoked" if k["revoked_at"] else "rotated" if k["replaced_by"] else "active"
                )
                print(f"{k['id']:<22} {k['key_prefix']:<11} {k['name'] or '-':<20} "
                      f"{k['user_id'] or '-':<14} {k['team_id'] or '-':<14} {state}")  # fmt: skip
    elif args.action == "revoke":
        status, data = await _call(args, "POST", f"/admin/keys/{args.key_id}/revoke")
        if status == 200:
            print(f"{data['id']}: revoked at {data['revoked_at']}")
    else:
        path = f"/admin/keys/{args.key_id}/rotate"
        status, data = await _call(args, "POST", path, {"grace_seconds": args.grace})
        if status == 201:
            print(f"id:  {data['id']}\nkey: {data['key']}\n"
                  f"(the old key {args.key_id} works for {args.grace:g} s more)")  # fmt: skip
    if status >= 400:
        print(f"error {status}: {data['error']['message']}", file=sys.stderr)
        return 1
    return 0


async def _call(
    args: argparse.Namespace, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {args.master_key}"} if args.master_key else {}
    timeout = aiohttp.ClientTimeout(total=30)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.request(method, args.url.rstrip("/") + path, json=body, headers=headers) as resp,
    ):
        return resp.status, await resp.json(content_type=None)

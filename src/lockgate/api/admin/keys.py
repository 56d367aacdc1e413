"""Admin routes for virtual keys: create (the key is shown once), list, get, update,
revoke, rotate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from lockgate.api.admin.common import Route, admin, body, missing, respond
from lockgate.api.admin.models import KeyCreate, KeyCreated, KeyInfo, KeyList, KeyRotate, KeyUpdate
from lockgate.core.errors import BadRequest
from lockgate.storage.keys import KeyRow, KeyStore
from lockgate.storage.scopes import ScopeStore


def _info(row: KeyRow) -> KeyInfo:
    return KeyInfo.model_validate(row.public())


async def create(request: web.Request) -> web.Response:
    db, _ = await admin(request)
    req = await body(request, KeyCreate)
    expires = req.expires_at
    if req.expires_in is not None:
        expires = datetime.now(UTC) + timedelta(seconds=req.expires_in)
    scopes = ScopeStore(db.engine)
    for kind, ident in (("user", req.user_id), ("team", req.team_id)):
        if ident is not None and await scopes.get(kind, ident) is None:
            raise BadRequest(f"No {kind} with id {ident!r}.", param=f"{kind}_id")
    secret, row = await KeyStore(db.engine).create(
        name=req.name,
        user_id=req.user_id,
        team_id=req.team_id,
        allowed_models=req.models,
        expires_at=expires,
        metadata=req.metadata,
    )
    return respond(KeyCreated.model_validate({**row.public(), "key": secret}), 201)


async def listing(request: web.Request) -> web.Response:
    db, _ = await admin(request)
    rows = await KeyStore(db.engine).all(
        user_id=request.query.get("user_id"), team_id=request.query.get("team_id")
    )
    return respond(KeyList(data=[_info(r) for r in rows]))


async def get(request: web.Request) -> web.Response:
    db, _ = await admin(request)
    key_id = request.match_info["key_id"]
    row = await KeyStore(db.engine).get(key_id)
    if row is None:
        raise missing("key", key_id)
    return respond(_info(row))


async def patch(request: web.Request) -> web.Response:
    db, keys = await admin(request)
    key_id = request.match_info["key_id"]
    req = await body(request, KeyUpdate)
    values: dict[str, Any] = {}
    for field in req.model_fields_set:
        values["allowed_models" if field == "models" else field] = getattr(req, field)
    if values.get("metadata", {}) is None:
        values["metadata"] = {}
    row = await KeyStore(db.engine).update(key_id, **values)
    if row is None:
        raise missing("key", key_id)
    await keys.changed(key_id)
    return respond(_info(row))


async def revoke(request: web.Request) -> web.Response:
    db, keys = await admin(request)
    key_id = request.match_info["key_id"]
    row = await KeyStore(db.engine).revoke(key_id)
    if row is None:
        raise missing("key", key_id)
    await keys.changed(key_id)  # refused from now on, here and on every replica
    return respond(_info(row))


async def rotate(request: web.Request) -> web.Response:
    db, keys = await admin(request)
    key_id = request.match_info["key_id"]
    req = await body(request, KeyRotate) if request.can_read_body else KeyRotate()
    store = KeyStore(db.engine)
    rotated = await store.rotate(key_id, req.grace_seconds)
    if rotated is None:
        if await store.get(key_id) is None:
            raise missing("key", key_id)
        raise BadRequest("Only a working key can be rotated.", code="key_not_active")
    secret, new = rotated
    await keys.changed(key_id)  # its grace period is now part of what is cached
    return respond(KeyCreated.model_validate({**new.public(), "key": secret}), 201)


ROUTES = [
    Route("POST", "/admin/keys", create, "Create a key (returned once)", KeyCreate, KeyCreated),
    Route("GET", "/admin/keys", listing, "List keys", None, KeyList, ("user_id", "team_id")),
    Route("GET", "/admin/keys/{key_id}", get, "Get a key", None, KeyInfo),
    Route("PATCH", "/admin/keys/{key_id}", patch, "Update a key", KeyUpdate, KeyInfo),
    Route("POST", "/admin/keys/{key_id}/revoke", revoke, "Revoke a key", None, KeyInfo),
    Route(
        "POST", "/admin/keys/{key_id}/rotate", rotate, "Rotate a key (new key returned once)",
        KeyRotate, KeyCreated,
    ),
]  # fmt: skip

"""Admin routes for users and teams, and the budgets, rate limits and current usage of
keys, users and teams."""

from __future__ import annotations

from decimal import Decimal
from functools import partial

from aiohttp import web
from pydantic import BaseModel

from lockgate.api.admin.common import Handler, Route, admin, body, missing, respond
from lockgate.api.admin.models import (
    BudgetSet,
    Deleted,
    LimitSet,
    PeriodUsageOut,
    Scope,
    ScopeList,
    Settings,
    TeamCreate,
    TeamUpdate,
    UsageOut,
    UserCreate,
    UserUpdate,
)
from lockgate.core.errors import BadRequest
from lockgate.features.keyauth import KeyCache
from lockgate.features.money import usd_to_units
from lockgate.storage.keys import KeyStore
from lockgate.storage.reports import current_usage
from lockgate.storage.scopes import Conflict, ScopeStore

_KINDS = {"keys": "key", "users": "user", "teams": "team"}


async def _create(kind: str, model: type[BaseModel], request: web.Request) -> web.Response:
    db, _ = await admin(request)
    req = await body(request, model)
    try:
        row = await ScopeStore(db.engine).create(kind, req.model_dump())
    except Conflict as exc:
        raise BadRequest(str(exc), code=f"{kind}_conflict") from None
    return respond(Scope.model_validate(row), 201)


async def _list(kind: str, request: web.Request) -> web.Response:
    db, _ = await admin(request)
    rows = await ScopeStore(db.engine).all(kind)
    return respond(ScopeList(data=[Scope.model_validate(r) for r in rows]))


async def _get(kind: str, request: web.Request) -> web.Response:
    db, _ = await admin(request)
    ident = request.match_info["id"]
    row = await ScopeStore(db.engine).get(kind, ident)
    if row is None:
        raise missing(kind, ident)
    return respond(Scope.model_validate(row))


async def _patch(kind: str, model: type[BaseModel], request: web.Request) -> web.Response:
    db, keys = await admin(request)
    ident = request.match_info["id"]
    req = await body(request, model)
    values = {f: getattr(req, f) for f in req.model_fields_set}
    try:
        row = await ScopeStore(db.engine).update(kind, ident, values)
    except Conflict as exc:
        raise BadRequest(str(exc), code=f"{kind}_conflict") from None
    if row is None:
        raise missing(kind, ident)
    await keys.changed()  # a user's team feeds its keys' principals
    return respond(Scope.model_validate(row))


async def _delete(kind: str, request: web.Request) -> web.Response:
    db, keys = await admin(request)
    ident = request.match_info["id"]
    if not await ScopeStore(db.engine).delete(kind, ident):
        raise missing(kind, ident)
    await keys.changed()
    return respond(Deleted(id=ident, deleted=True))


async def _scope(request: web.Request) -> tuple[ScopeStore, str, str, KeyCache]:
    db, keys = await admin(request)
    kind, ident = _KINDS[request.match_info["kind"]], request.match_info["id"]
    store = ScopeStore(db.engine)
    found = (
        await KeyStore(db.engine).get(ident) is not None
        if kind == "key"
        else await store.get(kind, ident) is not None
    )
    if not found:
        raise missing(kind, ident)
    return store, kind, ident, keys


async def settings(request: web.Request) -> web.Response:
    store, kind, ident, _keys = await _scope(request)
    return respond(Settings.model_validate(await store.settings(kind, ident)))


async def _changed(store: ScopeStore, kind: str, ident: str, keys: KeyCache) -> web.Response:
    """After a budget or limit change: drop the cached keys it touches, answer the settings."""
    await keys.changed(ident if kind == "key" else None)
    return respond(Settings.model_validate(await store.settings(kind, ident)))


async def put_budget(request: web.Request) -> web.Response:
    store, kind, ident, keys = await _scope(request)
    req = await body(request, BudgetSet)
    await store.put_budget(kind, ident, usd_to_units(req.limit_usd), req.period, req.alerts)
    return await _changed(store, kind, ident, keys)


async def delete_budget(request: web.Request) -> web.Response:
    store, kind, ident, keys = await _scope(request)
    if not await store.delete_budget(kind, ident, request.match_info["period"]):
        raise missing("budget", request.match_info["period"])
    return await _changed(store, kind, ident, keys)


async def put_limit(request: web.Request) -> web.Response:
    store, kind, ident, keys = await _scope(request)
    req = await body(request, LimitSet)
    values = req.model_dump(exclude={"model"})
    await store.put_limit(kind, ident, req.model, values)
    return await _changed(store, kind, ident, keys)


async def delete_limit(request: web.Request) -> web.Response:
    store, kind, ident, keys = await _scope(request)
    if not await store.delete_limit(kind, ident, request.match_info["model"]):
        raise missing("limit", request.match_info["model"])
    return await _changed(store, kind, ident, keys)


async def usage(request: web.Request) -> web.Response:
    store, kind, ident, _keys = await _scope(request)
    periods = await current_usage(store.engine, kind, ident)
    return respond(
        UsageOut(
            scope=kind,
            id=ident,
            periods=[
                PeriodUsageOut(
                    period=u.period,
                    period_start=u.period_start.isoformat(),
                    spent_usd=f"{Decimal(u.spent_nanos).scaleb(-9):f}",
                    spent_nanos=u.spent_nanos,
                    requests=u.requests,
                    prompt_tokens=u.prompt_tokens,
                    completion_tokens=u.completion_tokens,
                )
                for u in periods.values()
            ],
        )
    )


def _crud(kind: str, create: type[BaseModel], update: type[BaseModel]) -> list[Route]:
    base = f"/admin/{kind}s"
    h: dict[str, Handler] = {
        "create": partial(_create, kind, create),
        "list": partial(_list, kind),
        "get": partial(_get, kind),
        "patch": partial(_patch, kind, update),
        "delete": partial(_delete, kind),
    }
    return [
        Route("POST", base, h["create"], f"Create a {kind}", create, Scope),
        Route("GET", base, h["list"], f"List {kind}s", None, ScopeList),
        Route("GET", base + "/{id}", h["get"], f"Get a {kind}", None, Scope),
        Route("PATCH", base + "/{id}", h["patch"], f"Update a {kind}", update, Scope),
        Route("DELETE", base + "/{id}", h["delete"], f"Delete a {kind}", None, Deleted),
    ]


_S = "/admin/{kind:keys|users|teams}/{id}"
ROUTES = [
    *_crud("team", TeamCreate, TeamUpdate),
    *_crud("user", UserCreate, UserUpdate),
    Route("GET", _S + "/settings", settings, "Budgets and limits of a key, user or team",
          None, Settings),
    Route("PUT", _S + "/budgets", put_budget, "Set a budget (one per period)", BudgetSet,
          Settings),
    Route("DELETE", _S + "/budgets/{period}", delete_budget, "Remove a budget", None, Settings),
    Route("PUT", _S + "/limits", put_limit, "Set rate limits (one set per model)", LimitSet,
          Settings),
    Route("DELETE", _S + "/limits/{model}", delete_limit, "Remove rate limits", None,
          Settings),
    Route("GET", _S + "/usage", usage, "Current usage per budget period", None, UsageOut),
]  # fmt: skip

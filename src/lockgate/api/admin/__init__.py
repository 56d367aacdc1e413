"""The admin API under /admin (master key): keys, users, teams, budgets, limits, spend,
the request log."""

from __future__ import annotations

import orjson
from aiohttp import web

from lockgate.api import request_log
from lockgate.api.admin import keys, scopes, spend
from lockgate.api.admin.common import Route
from lockgate.api.admin.openapi import document

ROUTES: list[Route] = [*keys.ROUTES, *scopes.ROUTES, *spend.ROUTES, *request_log.ROUTES]


def add_routes(app: web.Application) -> None:
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
    body = orjson.dumps(document(ROUTES))

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app.router.add_get("/admin/openapi.json", openapi)

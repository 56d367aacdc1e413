"""Admin endpoints for the request log, master key only.

GET /admin/requests?model=&status=&key=&since=&until=&limit=&cursor=
GET /admin/requests/{request_id}
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from lockgate.api.admin.common import Route
from lockgate.api.master import require_master
from lockgate.core.errors import BadRequest, NotFound
from lockgate.storage import request_log
from lockgate.storage.request_log import MAX_LIMIT, Filters

DEFAULT_LIMIT = 50


async def _engine(request: web.Request) -> AsyncEngine:
    state = await require_master(request, "The request log")
    database = state.database
    if database is None or not database.spend.bound:
        raise NotFound("The request log needs a database (the config has 'database: null').")
    return database.engine


def _time(request: web.Request, name: str) -> datetime | None:
    value = request.query.get(name)
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            return datetime.fromtimestamp(float(value), UTC)
        except (ValueError, OverflowError, OSError):
            raise BadRequest(
                f"{name} must be an ISO 8601 time or unix seconds.", param=name
            ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _limit(request: web.Request) -> int:
    value = request.query.get("limit") or str(DEFAULT_LIMIT)
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}.", param="limit")
    return int(value)


async def list_requests(request: web.Request) -> web.Response:
    engine = await _engine(request)
    query = request.query
    filters = Filters(
        model=query.get("model") or None,
        status=query.get("status") or None,
        key=query.get("key") or None,
        since=_time(request, "since"),
        until=_time(request, "until"),
    )
    try:
        rows, cursor = await request_log.page(
            engine, filters, _limit(request), query.get("cursor") or None
        )
    except ValueError:
        raise BadRequest("cursor is not one this endpoint returned.", param="cursor") from None
    return web.json_response({"object": "list", "data": rows, "next_cursor": cursor})


async def get_request(request: web.Request) -> web.Response:
    engine = await _engine(request)
    request_id = request.match_info["request_id"]
    row = await request_log.one(engine, request_id)
    if row is None:
        raise NotFound(f"No request {request_id!r} in the request log.")
    return web.json_response(row)


# Served (and documented in /admin/openapi.json) with the rest of the admin API.
ROUTES = [
    Route(
        "GET",
        "/admin/requests",
        list_requests,
        "The request log, newest first; keyset paging with next_cursor",
        query=("model", "status", "key", "since", "until", "limit", "cursor"),
    ),
    Route("GET", "/admin/requests/{request_id}", get_request, "One request's record"),
]

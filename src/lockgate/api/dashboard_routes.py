"""The dashboard at /ui: its static page, and the small JSON endpoints under /ui/api/ that
the page reads (the master key only, sent as a Bearer header)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from lockgate.api.master import require_master
from lockgate.core.errors import BadRequest, NotFound
from lockgate.dashboard.live import snapshot
from lockgate.state import STATE
from lockgate.storage import dashboard_queries as q

_STATIC_TYPES = {
    "index.html": "text/html",
    "app.js": "application/javascript",
    "charts.js": "application/javascript",
    "style.css": "text/css",
}
_STATIC = web.AppKey("lockgate_ui_static", dict[str, bytes])
# Bucket widths (seconds): the smallest giving at most ~120 points over the range.
_BUCKETS = (10, 30, 60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86_400)
_MAX_SINCE = 90 * 86_400


async def _admin(request: web.Request) -> None:
    await require_master(request, "The dashboard", admin_keys=True)


async def _engine(request: web.Request) -> AsyncEngine:
    await _admin(request)
    database = request.app[STATE].database
    if database is None or not database.spend.bound:
        raise NotFound("No database is configured (the 'database' section): no spend ledger.")
    return database.engine


def _int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"Query parameter {name} must be an integer.", param=name) from None
    if not low <= value <= high:
        raise BadRequest(f"Query parameter {name} must be in [{low}, {high}].", param=name)
    return value


def _range(request: web.Request) -> tuple[q.Range, int]:
    """``since`` seconds back from now (default an hour) and ``model``; and a bucket width."""
    since = _int(request, "since", 3600, 60, _MAX_SINCE)
    end = datetime.now(UTC) + timedelta(seconds=1)  # a row written this second is in
    model = request.query.get("model") or None
    if model is not None and model not in request.app[STATE].pipeline.router.names():
        raise BadRequest(f"Unknown model group {model!r}.", param="model")
    bucket = next((b for b in _BUCKETS if since / b <= 120), _BUCKETS[-1])
    return q.Range(end - timedelta(seconds=since), end, model), bucket


async def page(request: web.Request) -> web.Response:
    return await _static_file(request, "index.html")


async def static(request: web.Request) -> web.Response:
    return await _static_file(request, request.match_info["name"])


async def _static_file(request: web.Request, name: str) -> web.Response:
    if name not in _STATIC_TYPES:
        raise NotFound(f"Unknown path {request.path}", code="unknown_url")
    files = request.app[_STATIC]
    body = files.get(name)
    if body is None:
        # Package data is read once, in a thread: file reads would block the event loop.
        path = resources.files("lockgate.dashboard").joinpath("static", name)
        body = files[name] = await asyncio.to_thread(path.read_bytes)
    return web.Response(
        body=body,
        content_type=_STATIC_TYPES[name],
        charset="utf-8",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


async def whoami(request: web.Request) -> web.Response:
    """The login check: 200 with the model groups for the filter, else 401/403."""
    await _admin(request)
    state = request.app[STATE]
    return web.json_response(
        {
            "models": state.pipeline.router.names(),
            "database": state.database is not None,
            "cache": state.pipeline.cache is not None,
        }
    )


async def series(request: web.Request) -> web.Response:
    engine = await _engine(request)
    rng, bucket = _range(request)
    by = request.query.get("by", "model")
    if by not in q.SERIES_GROUPS:
        raise BadRequest(f"Query parameter by must be one of {', '.join(q.SERIES_GROUPS)}.")
    rows = await q.series(engine, rng, by, bucket)
    return web.json_response(_framed(rng, bucket, {"by": by, "points": rows}))


async def latency(request: web.Request) -> web.Response:
    engine = await _engine(request)
    rng, bucket = _range(request)
    return web.json_response(_framed(rng, bucket, await q.latency(engine, rng, bucket)))


async def recent(request: web.Request) -> web.Response:
    engine = await _engine(request)
    rng, bucket = _range(request)
    status = request.query.get("status") or None
    if status not in (None, "ok", "error"):
        raise BadRequest("Query parameter status must be ok or error.", param="status")
    limit = _int(request, "limit", 25, 1, q.RECENT_MAX)
    offset = _int(request, "offset", 0, 0, 10_000_000)
    page_ = await q.recent(engine, rng, limit, offset, status)
    return web.json_response(_framed(rng, bucket, {"limit": limit, "offset": offset, **page_}))


async def request_detail(request: web.Request) -> web.Response:
    engine = await _engine(request)
    request_id = request.match_info["request_id"]
    row = await q.detail(engine, request_id)
    if row is None:
        raise NotFound(f"No ledger row for request {request_id!r}.")
    return web.json_response(row)


async def budgets(request: web.Request) -> web.Response:
    engine = await _engine(request)
    return web.json_response({"budgets": await q.budgets_used(engine)})


async def live(request: web.Request) -> web.Response:
    await _admin(request)
    pipeline = request.app[STATE].pipeline
    deployments = [(g.name, d.id) for g in pipeline.router.groups() for d in g.deployments]
    return web.json_response(snapshot(request.app[STATE].metrics, pipeline.cache, deployments))


def _framed(rng: q.Range, bucket: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "start": rng.start.isoformat(),
        "end": rng.end.isoformat(),
        "bucket": bucket,
        "model": rng.model,
        **body,
    }


def add_routes(app: web.Application) -> None:
    # Unnamed routes: dashboard polling stays out of the request metrics.
    app[_STATIC] = {}
    app.router.add_get("/ui", page)
    app.router.add_get("/ui/", page)
    app.router.add_get("/ui/static/{name}", static)
    app.router.add_get("/ui/api/whoami", whoami)
    app.router.add_get("/ui/api/series", series)
    app.router.add_get("/ui/api/latency", latency)
    app.router.add_get("/ui/api/recent", recent)
    app.router.add_get("/ui/api/requests/{request_id}", request_detail)
    app.router.add_get("/ui/api/budgets", budgets)
    app.router.add_get("/ui/api/live", live)

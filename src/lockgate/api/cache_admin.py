"""Admin endpoints for the response cache: stats and purges, for the master key only."""

from __future__ import annotations

from aiohttp import web

from lockgate.api.master import require_master
from lockgate.core.errors import NotFound
from lockgate.features.cache.response_cache import ResponseCache


async def _cache(request: web.Request) -> ResponseCache:
    state = await require_master(request, "The cache admin API")
    cache = state.pipeline.cache
    if cache is None:
        raise NotFound("The response cache is not configured (no 'cache:' section).")
    return cache


async def stats(request: web.Request) -> web.Response:
    return web.json_response(await (await _cache(request)).stats())


async def purge(request: web.Request) -> web.Response:
    """DELETE /admin/cache[?namespace=...][&model=...]: with neither, everything."""
    cache = await _cache(request)
    namespace = request.query.get("namespace") or None
    model = request.query.get("model") or None
    removed = await cache.purge(namespace, model)
    return web.json_response({"purged": removed, "namespace": namespace, "model": model})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/cache/stats", stats, name="cache_stats")
    app.router.add_delete("/admin/cache", purge, name="cache_purge")

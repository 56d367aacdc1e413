"""Admin endpoints for the response cache: stats and purges, for the master key only."""

from __future__ import annotations

from aiohttp import web

from lockgate.api.middleware import CTX
from lockgate.core.errors import NotFound, PermissionDenied
from lockgate.features.cache.response_cache import ResponseCache
from lockgate.state import STATE


async def _cache(request: web.Request) -> ResponseCache:
    state, ctx = request.app[STATE], request[CTX]
    await state.pipeline.authenticate(ctx)
    principal = ctx.principal
    # With no master key configured the gateway is open (loopback only), admin included.
    if state.config.server.master_key is not None and not (principal and principal.is_master):
        raise PermissionDenied("The cache admin API needs the master key.")
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

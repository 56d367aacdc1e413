"""The one check every operator endpoint makes: the caller holds the master key."""

from __future__ import annotations

from aiohttp import web

from lockgate.api.middleware import CTX
from lockgate.core.errors import PermissionDenied
from lockgate.state import STATE, GatewayState


async def require_master(
    request: web.Request, what: str, *, admin_keys: bool = False
) -> GatewayState:
    """401 without a valid key, 403 for any key but the master key (or, where
    ``admin_keys``, a virtual key whose metadata says `"admin": true`). With no master key
    configured the gateway is open (it then binds loopback only), operator routes included."""
    state, ctx = request.app[STATE], request[CTX]
    await state.pipeline.authenticate(ctx)
    principal = ctx.principal
    allowed = principal is not None and (principal.is_master or (admin_keys and principal.admin))
    if state.config.server.master_key is not None and not allowed:
        keys = "the master key or an admin key" if admin_keys else "the master key"
        raise PermissionDenied(f"{what} needs {keys}.")
    return state

"""Edge work for the routes aiohttp serves beyond the API endpoints (operator routes,
health, metrics, dashboard): request id, credential, errors in OpenAI's shape.

The API endpoints do their own (`api/endpoints.py`), on either server.
"""

from __future__ import annotations

import logging
from asyncio import CancelledError

from aiohttp import web
from aiohttp.typedefs import Handler

from lockgate.api.endpoints import ENDPOINTS
from lockgate.api.errors import openai_error_response
from lockgate.api.exchange import aiohttp_response
from lockgate.api.request_headers import credential, request_id
from lockgate.core.errors import GatewayError, NotFound
from lockgate.core.types import RequestContext

log = logging.getLogger("lockgate.api")

CTX = web.RequestKey("lockgate_ctx", RequestContext)
_ENDPOINTS = frozenset(e.name for e in ENDPOINTS)


@web.middleware
async def gateway_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.match_info.route.name in _ENDPOINTS:
        return await handler(request)
    ctx = RequestContext(
        request_id=request_id(request.headers), credential=credential(request.headers)
    )
    request[CTX] = ctx
    try:
        response = await handler(request)
    except GatewayError as exc:
        ctx.outcome = exc.kind
        return aiohttp_response(openai_error_response(exc, ctx))
    except web.HTTPException as exc:  # aiohttp's own: unknown path, wrong method
        if exc.status == 404:
            err: GatewayError = NotFound(f"Unknown path {request.path}", code="unknown_url")
        else:
            err = GatewayError(exc.reason, status=exc.status, code="http_error")
        ctx.outcome = err.kind
        return aiohttp_response(openai_error_response(err, ctx))
    except (CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("unexpected error serving request %s", ctx.request_id)
        err = GatewayError(f"Internal gateway error (request id {ctx.request_id}).")
        return aiohttp_response(openai_error_response(err, ctx))
    if not response.prepared:
        response.headers.update(ctx.response_headers())
    return response

"""Per-request edge work: request id, credential, error rendering, request metrics."""

from __future__ import annotations

import logging
import re
import time
from asyncio import CancelledError
from collections.abc import Mapping

from aiohttp import web
from aiohttp.typedefs import Handler

from lockgate.api.errors import error_renderer
from lockgate.core.errors import BadRequest, GatewayError, NotFound
from lockgate.core.memo import UniqueIds
from lockgate.core.types import CacheControl, RequestContext
from lockgate.state import STATE

log = logging.getLogger("lockgate.api")

CTX = web.RequestKey("lockgate_ctx", RequestContext)
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
# Request ids: a random per-process prefix and a counter, unique across replicas and cheap.
_REQUEST_IDS = UniqueIds("req_", width=12)


def _request_id(request: web.Request) -> str:
    given = request.headers.get("x-request-id")
    if given and _SAFE_ID.match(given):
        return given
    return _REQUEST_IDS()


def _credential(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer":
            return token.strip()
    return request.headers.get("x-api-key")  # Anthropic's header


def _controls(request: web.Request, ctx: RequestContext) -> None:
    """Per-request controls sent as headers (the SDKs' `extra_headers`)."""
    headers = request.headers
    if (value := headers.get("x-lockgate-priority")) is not None:
        try:
            ctx.priority = int(value)
        except ValueError:
            raise BadRequest(
                "Header x-lockgate-priority must be an integer.", param="x-lockgate-priority"
            ) from None
    if (value := headers.get("x-lockgate-max-wait")) is not None:
        ctx.max_wait = _seconds(value, "x-lockgate-max-wait")
    if (value := headers.get("x-lockgate-coalesce")) is not None:
        if value not in ("on", "off"):
            raise BadRequest(
                "Header x-lockgate-coalesce must be 'on' or 'off'.", param="x-lockgate-coalesce"
            )
        ctx.coalesce = value == "on"
    if (value := headers.get("x-lockgate-timeout")) is not None:
        ctx.deadline = ctx.started + _seconds(value, "x-lockgate-timeout")
    if any(name in headers for name in _CACHE_HEADERS):
        ctx.cache_control = _cache_control(headers)


_CACHE_HEADERS = ("x-lockgate-cache", "x-lockgate-cache-ttl", "x-lockgate-cache-namespace")
_CACHE_WORDS = frozenset({"no-cache", "no-store", "off", "on"})


def _cache_control(headers: Mapping[str, str]) -> CacheControl:
    words = {w.strip() for w in headers.get("x-lockgate-cache", "").split(",") if w.strip()}
    if not words <= _CACHE_WORDS:
        raise BadRequest(
            "Header x-lockgate-cache takes no-cache, no-store, off or on.",
            param="x-lockgate-cache",
        )
    off = "off" in words
    ttl = headers.get("x-lockgate-cache-ttl")
    namespace = headers.get("x-lockgate-cache-namespace")
    if namespace is not None and not _SAFE_ID.match(namespace):
        raise BadRequest(
            "Header x-lockgate-cache-namespace must be 1-128 letters, digits or ._:-",
            param="x-lockgate-cache-namespace",
        )
    return CacheControl(
        lookup=not off and "no-cache" not in words,
        store=not off and "no-store" not in words,
        force="on" in words,
        ttl=_seconds(ttl, "x-lockgate-cache-ttl") if ttl is not None else None,
        namespace=namespace,
    )


def _seconds(value: str, name: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not 0 <= seconds <= 86_400:
        raise BadRequest(f"Header {name} must be a number of seconds.", param=name)
    return seconds


def _status(response: web.StreamResponse | None) -> int:
    return 499 if response is None else response.status


@web.middleware
async def gateway_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    ctx = RequestContext(request_id=_request_id(request), credential=_credential(request))
    request[CTX] = ctx
    endpoint = request.match_info.route.name
    metrics = request.app[STATE].metrics if endpoint is not None else None
    tracing = request.app[STATE].pipeline.tracing if endpoint is not None else None
    if tracing is not None:
        route = request.match_info.route.resource
        path = route.canonical if route is not None else request.path
        tracing.begin(ctx, path, request.method, request.headers)
    if metrics is not None:  # health, metrics, unknown paths: no request metrics
        metrics.in_flight += 1
    response: web.StreamResponse | None = None
    try:
        _controls(request, ctx)
        response = await handler(request)
    except GatewayError as exc:
        ctx.outcome = exc.kind
        response = error_renderer(request.app, endpoint)(exc, ctx)
    except web.HTTPException as exc:  # aiohttp's own: unknown path, wrong method
        if exc.status == 404:
            err: GatewayError = NotFound(f"Unknown path {request.path}", code="unknown_url")
        else:
            err = GatewayError(exc.reason, status=exc.status, code="http_error")
        ctx.outcome = err.kind
        response = error_renderer(request.app, endpoint)(err, ctx)
    except CancelledError:
        ctx.outcome = "client_disconnected"
        raise
    except ConnectionResetError:
        raise
    except Exception:
        log.exception("unexpected error serving request %s", ctx.request_id)
        ctx.outcome = "internal"
        err = GatewayError(f"Internal gateway error (request id {ctx.request_id}).")
        response = error_renderer(request.app, endpoint)(err, ctx)
    else:
        if not response.prepared:
            response.headers.update(ctx.response_headers())
    finally:
        if metrics is not None:
            metrics.in_flight -= 1
            metrics.request_done(
                endpoint or "", ctx.model_group, ctx.outcome, time.perf_counter() - ctx.started
            )
            metrics.genai.request(ctx)
        if tracing is not None:
            tracing.end(ctx, _status(response))
    return response

"""The API endpoints clients call, and the edge work around each call.

One table serves both HTTP servers: lockgate's own front (`api/front/`) looks endpoints up
by method and path, and aiohttp gets the same endpoints as routes through
`AiohttpExchange`. `serve` is the edge: request id, credential and controls from the
headers, request metrics and the server span, errors rendered in the endpoint's wire
format.
"""

from __future__ import annotations

import logging
import time
from asyncio import CancelledError
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from lockgate.api import anthropic_routes, openai_routes
from lockgate.api.anthropic_errors import anthropic_error_response as ANTHROPIC
from lockgate.api.errors import ErrorRenderer, openai_error_response
from lockgate.api.exchange import AiohttpExchange, Exchange, Reply
from lockgate.api.request_headers import controls, credential, request_id
from lockgate.core.errors import GatewayError
from lockgate.core.types import RequestContext
from lockgate.state import STATE, GatewayState

log = logging.getLogger("lockgate.api")

Handler = Callable[[GatewayState, Exchange, RequestContext], Awaitable[Reply | None]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str  # the `endpoint` label of the request metrics
    method: str
    path: str
    handler: Handler  # a Reply, or None once it has streamed its response
    render_error: ErrorRenderer = openai_error_response


ENDPOINTS = (
    Endpoint("chat", "POST", "/v1/chat/completions", openai_routes.chat_completions),
    Endpoint("embeddings", "POST", "/v1/embeddings", openai_routes.embeddings),
    Endpoint("models", "GET", "/v1/models", openai_routes.list_models),
    Endpoint("messages", "POST", "/v1/messages", anthropic_routes.messages, ANTHROPIC),
    Endpoint(
        "count_tokens",
        "POST",
        "/v1/messages/count_tokens",
        anthropic_routes.count_tokens,
        ANTHROPIC,
    ),
)
BY_ROUTE = {(e.method.encode(), e.path.encode()): e for e in ENDPOINTS}


async def serve(state: GatewayState, endpoint: Endpoint, ex: Exchange) -> int:
    """Run one endpoint call to its end; the response's status (499: the client left)."""
    headers = ex.headers
    ctx = RequestContext(request_id=request_id(headers), credential=credential(headers))
    metrics = state.metrics
    tracing = state.pipeline.tracing
    if tracing is not None:
        tracing.begin(ctx, endpoint.path, ex.method, headers)
    metrics.in_flight += 1
    status = 499
    try:
        controls(headers, ctx)
        reply = await endpoint.handler(state, ex, ctx)
        if reply is None:
            status = 200
        else:
            merged = ctx.response_headers()  # a new dict: the reply's own headers win
            merged.update(reply.headers)
            reply.headers = merged
            ex.reply(reply)
            status = reply.status
    except GatewayError as exc:
        ctx.outcome = exc.kind
        status = _fail(ex, endpoint.render_error(exc, ctx))
    except (CancelledError, ConnectionError):
        ctx.outcome = "client_disconnected"
        raise
    except Exception:
        log.exception("unexpected error serving request %s", ctx.request_id)
        ctx.outcome = "internal"
        err = GatewayError(f"Internal gateway error (request id {ctx.request_id}).")
        status = _fail(ex, endpoint.render_error(err, ctx))
    finally:
        metrics.in_flight -= 1
        metrics.request_done(
            endpoint.name, ctx.model_group, ctx.outcome, time.perf_counter() - ctx.started
        )
        metrics.genai.request(ctx)
        if tracing is not None:
            tracing.end(ctx, status)
    return status


def _fail(ex: Exchange, reply: Reply) -> int:
    if ex.started:  # the head is gone: nothing can say so any more
        return 200
    ex.reply(reply)
    return reply.status


def aiohttp_route(endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        ex = AiohttpExchange(request)
        await serve(request.app[STATE], endpoint, ex)
        assert ex.response is not None
        return ex.response

    return handle


def add_routes(app: web.Application) -> None:
    for e in ENDPOINTS:
        if e.method == "GET":  # HEAD too, as aiohttp's GET routes do
            app.router.add_get(e.path, aiohttp_route(e), name=e.name)
        else:
            app.router.add_route(e.method, e.path, aiohttp_route(e), name=e.name)

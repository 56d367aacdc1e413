"""Anthropic-compatible endpoints: thin translators around the pipeline."""

from __future__ import annotations

import orjson
from aiohttp import web

from lockgate.api.anthropic_errors import anthropic_error_response, anthropic_headers
from lockgate.api.anthropic_stream import relay_anthropic_stream
from lockgate.api.anthropic_wire import to_chat_request, to_message
from lockgate.api.errors import declare_error_renderer
from lockgate.api.middleware import CTX
from lockgate.api.openai_wire import read_json
from lockgate.features.tokens import count_tokens as count
from lockgate.state import STATE


async def messages(request: web.Request) -> web.StreamResponse:
    state, ctx = request.app[STATE], request[CTX]
    await state.pipeline.authenticate(ctx)
    req = to_chat_request(await read_json(request, state.config.server.max_body_bytes))
    if req.stream:
        chunks = await state.pipeline.chat_stream(req, ctx)
        return await relay_anthropic_stream(request, ctx, chunks, req)
    result = await state.pipeline.chat(req, ctx)
    return web.Response(
        body=orjson.dumps(to_message(result.body, result.usage, req)),
        content_type="application/json",
        headers=anthropic_headers(ctx),
    )


async def count_tokens(request: web.Request) -> web.StreamResponse:
    """Input tokens of a Messages request, counted here: no upstream call."""
    state, ctx = request.app[STATE], request[CTX]
    await state.pipeline.authenticate(ctx)
    body = await read_json(request, state.config.server.max_body_bytes)
    body.pop("stream", None)
    req = to_chat_request(body, require_max_tokens=False)
    group, matched = state.pipeline.router.resolve(req.model)
    upstream_model = group.deployments[0].upstream_model(matched)
    tokens = await count(req.body, upstream_model)
    return web.Response(
        body=orjson.dumps({"input_tokens": tokens}),
        content_type="application/json",
        headers=anthropic_headers(ctx),
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/messages", messages, name="messages")
    app.router.add_post("/v1/messages/count_tokens", count_tokens, name="count_tokens")
    declare_error_renderer(app, anthropic_error_response, "messages", "count_tokens")

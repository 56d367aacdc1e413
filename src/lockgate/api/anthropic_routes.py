"""Anthropic-compatible endpoints: thin translators around the pipeline."""

from __future__ import annotations

import orjson

from lockgate.api.anthropic_stream import relay_anthropic_stream
from lockgate.api.anthropic_wire import to_chat_request, to_message
from lockgate.api.exchange import Exchange, Reply
from lockgate.api.openai_wire import read_json
from lockgate.core.types import RequestContext
from lockgate.features.tokens import count_tokens as count
from lockgate.state import GatewayState


def _reply(ctx: RequestContext, body: bytes) -> Reply:
    # Anthropic's SDKs read the request id from `request-id`.
    return Reply(200, body, {"request-id": ctx.request_id})


async def messages(state: GatewayState, ex: Exchange, ctx: RequestContext) -> Reply | None:
    await state.pipeline.authenticate(ctx)
    req = to_chat_request(await read_json(ex, state.config.server.max_body_bytes))
    if req.stream:
        chunks = await state.pipeline.chat_stream(req, ctx)
        await relay_anthropic_stream(ex, ctx, chunks, req)
        return None
    result = await state.pipeline.chat(req, ctx)
    return _reply(ctx, orjson.dumps(to_message(result.body, result.usage, req)))


async def count_tokens(state: GatewayState, ex: Exchange, ctx: RequestContext) -> Reply:
    """Input tokens of a Messages request, counted here: no upstream call."""
    await state.pipeline.authenticate(ctx)
    body = await read_json(ex, state.config.server.max_body_bytes)
    body.pop("stream", None)
    req = to_chat_request(body, require_max_tokens=False)
    group, matched = state.pipeline.router.resolve(req.model)
    upstream_model = group.deployments[0].upstream_model(matched)
    tokens = await count(req.body, upstream_model)
    return _reply(ctx, orjson.dumps({"input_tokens": tokens}))

"""OpenAI-compatible endpoints: thin translators around the pipeline."""

from __future__ import annotations

import orjson

from lockgate.api.exchange import Exchange, Reply
from lockgate.api.openai_wire import parse_chat, parse_embeddings, read_json
from lockgate.api.sse import relay_openai_stream
from lockgate.core.types import RequestContext
from lockgate.state import GatewayState


async def chat_completions(state: GatewayState, ex: Exchange, ctx: RequestContext) -> Reply | None:
    await state.pipeline.authenticate(ctx)
    req = parse_chat(await read_json(ex, state.config.server.max_body_bytes))
    if req.stream:
        chunks = await state.pipeline.chat_stream(req, ctx)
        await relay_openai_stream(ex, ctx, chunks, include_usage=req.include_usage)
        return None
    result = await state.pipeline.chat(req, ctx)
    return Reply(200, result.raw if result.raw is not None else orjson.dumps(result.body))


async def embeddings(state: GatewayState, ex: Exchange, ctx: RequestContext) -> Reply:
    await state.pipeline.authenticate(ctx)
    req = parse_embeddings(await read_json(ex, state.config.server.max_body_bytes))
    result = await state.pipeline.embed(req, ctx)
    return Reply(200, result.raw if result.raw is not None else orjson.dumps(result.body))


async def list_models(state: GatewayState, ex: Exchange, ctx: RequestContext) -> Reply:
    await state.pipeline.authenticate(ctx)
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": "lockgate"}
        for name in state.pipeline.router.names()
    ]
    return Reply(200, orjson.dumps({"object": "list", "data": data}))

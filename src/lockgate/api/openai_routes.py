"""OpenAI-compatible endpoints: thin translators around the pipeline."""

from __future__ import annotations

import orjson
from aiohttp import web

from lockgate.api.middleware import CTX
from lockgate.api.openai_wire import parse_chat, parse_embeddings, read_json
from lockgate.api.sse import relay_openai_stream
from lockgate.state import STATE


def _json(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/json")


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state, ctx = request.app[STATE], request[CTX]
    await state.pipeline.authenticate(ctx)
    req = parse_chat(await read_json(request, state.config.server.max_body_bytes))
    if req.stream:
        chunks = await state.pipeline.chat_stream(req, ctx)
        return await relay_openai_stream(request, ctx, chunks, include_usage=req.include_usage)
    result = await state.pipeline.chat(req, ctx)
    return _json(result.raw if result.raw is not None else orjson.dumps(result.body))


async def embeddings(request: web.Request) -> web.StreamResponse:
    state, ctx = request.app[STATE], request[CTX]
    await state.pipeline.authenticate(ctx)
    req = parse_embeddings(await read_json(request, state.config.server.max_body_bytes))
    result = await state.pipeline.embed(req, ctx)
    return _json(result.raw if result.raw is not None else orjson.dumps(result.body))


async def list_models(request: web.Request) -> web.StreamResponse:
    state, ctx = request.app[STATE], request[CTX]
    await state.pipeline.authenticate(ctx)
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": "lockgate"}
        for name in state.pipeline.router.names()
    ]
    return _json(orjson.dumps({"object": "list", "data": data}))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat_completions, name="chat")
    app.router.add_post("/v1/embeddings", embeddings, name="embeddings")
    app.router.add_get("/v1/models", list_models, name="models")

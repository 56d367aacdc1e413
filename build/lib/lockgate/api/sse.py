"""Server-sent events out: relay chunks as they arrive, end with [DONE] or an error event."""

from __future__ import annotations

from contextlib import suppress

import orjson
from aiohttp import web

from lockgate.api.errors import openai_error_body
from lockgate.core.errors import GatewayError
from lockgate.core.types import ChunkStream, RequestContext

_DONE = b"data: [DONE]\n\n"


async def relay_openai_stream(
    request: web.Request, ctx: RequestContext, chunks: ChunkStream, *, include_usage: bool
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            **ctx.response_headers(),
        }
    )
    await response.prepare(request)
    try:
        async for chunk in chunks:
            # lockgate always asks upstream for usage (to bill streams); a client that did
            # not ask for it does not get the usage-only chunk.
            if chunk.is_usage_only and not include_usage:
                continue
            data = chunk.raw if chunk.raw is not None else orjson.dumps(chunk.data)
            await response.write(b"data: " + data + b"\n\n")
        await response.write(_DONE)
    except GatewayError as exc:
        # Headers are gone already: the failure travels as an error event the SDKs raise on.
        ctx.outcome = exc.kind
        with suppress(ConnectionError):
            await response.write(b"data: " + orjson.dumps(openai_error_body(exc)) + b"\n\n")
    except ConnectionError:
        ctx.outcome = "client_disconnected"
    finally:
        await chunks.aclose()
    with suppress(ConnectionError):
        await response.write_eof()
    return response

"""Server-sent events out: relay chunks as they arrive, end with [DONE] or an error event."""

from __future__ import annotations

from contextlib import suppress

import orjson

from lockgate.api.errors import openai_error_body
from lockgate.api.exchange import SSE_HEADERS, Exchange
from lockgate.core.errors import GatewayError
from lockgate.core.types import ChunkStream, RequestContext

_DONE = b"data: [DONE]\n\n"


async def relay_openai_stream(
    ex: Exchange, ctx: RequestContext, chunks: ChunkStream, *, include_usage: bool
) -> None:
    try:
        await ex.open_stream({**SSE_HEADERS, **ctx.response_headers()})
        async for chunk in chunks:
            # lockgate always asks upstream for usage (to bill streams); a client that did
            # not ask for it does not get the usage-only chunk.
            if chunk.is_usage_only and not include_usage:
                continue
            data = chunk.raw if chunk.raw is not None else orjson.dumps(chunk.data)
            await ex.send(b"data: " + data + b"\n\n")
        await ex.send(_DONE)
    except GatewayError as exc:
        # Headers are gone already: the failure travels as an error event the SDKs raise on.
        ctx.outcome = exc.kind
        with suppress(ConnectionError):
            await ex.send(b"data: " + orjson.dumps(openai_error_body(exc)) + b"\n\n")
    except ConnectionError:
        ctx.outcome = "client_disconnected"
    finally:
        await chunks.aclose()
    with suppress(ConnectionError):
        await ex.close_stream()

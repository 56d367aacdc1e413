"""What every admin route shares: the master-key check, bodies, and the route table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from lockgate.api.exchange import AiohttpExchange
from lockgate.api.master import require_master
from lockgate.api.openai_wire import read_json
from lockgate.core.errors import BadRequest, NotFound
from lockgate.features.keyauth import KeyCache
from lockgate.state import STATE
from lockgate.storage.service import Database

B = TypeVar("B", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    """One admin route, with what the OpenAPI document says about it."""

    method: str
    path: str
    handler: Handler
    summary: str
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    query: tuple[str, ...] = ()


async def admin(request: web.Request) -> tuple[Database, KeyCache]:
    """The master key only (401 without a valid key, 403 for any other key)."""
    state = await require_master(request, "The admin API")
    if state.database is None or state.keys is None:
        raise NotFound("The admin API needs a database (the 'database:' section).")
    return state.database, state.keys


async def body(request: web.Request, model: type[B]) -> B:
    raw = await read_json(AiohttpExchange(request), request.app[STATE].config.server.max_body_bytes)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise BadRequest(f"Invalid body: {param}: {first['msg']}", param=param) from None


def respond(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(
        body=model.model_dump_json(), status=status, content_type="application/json"
    )


def missing(what: str, ident: str) -> NotFound:
    return NotFound(f"No {what} with id {ident!r}.", code=f"{what}_not_found")

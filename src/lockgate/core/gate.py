"""The admit step's interface: the gateway's own limits and budgets, before any call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from lockgate.core.router import ModelGroup
from lockgate.core.types import JSON, RequestContext

Finish = Callable[[], None]


class Gate(Protocol):
    async def admit(self, ctx: RequestContext, group: ModelGroup, body: JSON) -> Finish | None:
        """Admit the request for ``group`` or raise (403 model not allowed, 429 limited or
        over budget). Returns what to call exactly once when the request is over (usage
        and cost are then on ``ctx``), or None when nothing was held."""
        ...

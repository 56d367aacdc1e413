"""The admit step's interface: the gateway's own limits and budgets, before any call."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Literal, Protocol

from lockgate.core.router import ModelGroup
from lockgate.core.types import JSON, RequestContext

Finish = Callable[[], None]


class Later(enum.Enum):
    LATER = "later"


LATER = Later.LATER  # ``admit_now`` cannot answer without waiting: await ``admit_later``


class Gate(Protocol):
    """Admits a request for ``group`` or raises (403 model not allowed, 429 limited or
    over budget). Admitted, it returns what to call exactly once when the request is over
    (usage and cost are then on ``ctx``), or None when nothing was held. Every request
    asks ``admit_now`` first; ``admit_later`` only when it answered LATER."""

    async def admit_later(
        self, ctx: RequestContext, group: ModelGroup, body: JSON
    ) -> Finish | None:
        """The admission ``admit_now`` could not give without waiting."""
        ...

    def admit_now(
        self, ctx: RequestContext, group: ModelGroup, body: JSON
    ) -> Finish | Literal[Later.LATER] | None:
        """The admission where it needs no waiting (in-process engines, a shared engine's
        credit), or LATER having taken nothing: most requests are admitted without a
        coroutine."""
        ...

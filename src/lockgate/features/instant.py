"""What the Governor asks of shared engines that can answer some requests at once.

Kept apart from enforce.py, which is compiled (lockgate/compiled.py): these protocols are
checked with ``isinstance`` at run time, which a compiled protocol does not allow.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from lockgate.features.budgets import Budget, Reservation
from lockgate.features.ratelimit import Grant, RateLimit, Ticket


@runtime_checkable
class InstantLimiter(Protocol):
    """A shared limiter that can admit and settle some requests without waiting (from this
    replica's credit: limit_credits.py)."""

    def try_check(
        self, limits: Iterable[RateLimit], model: str | None, tokens: int
    ) -> Grant | None:
        """``check``'s grant when it needs no round trip, else None (nothing taken)."""
        ...

    def try_settle(self, ticket: Ticket, tokens: int) -> bool:
        """True when settled without a round trip; False: nothing done, call ``settle``."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class InstantBudgets(Protocol):
    """Shared budgets that can reserve and settle some requests without waiting (on this
    replica's leases: budget_leases.py)."""

    def try_reserve(self, budgets: Iterable[Budget], max_cost: int) -> Reservation | None: ...

    def try_settle(self, reservation: Reservation, cost: int) -> bool: ...

    async def close(self) -> None: ...

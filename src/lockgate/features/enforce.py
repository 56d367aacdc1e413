"""The admit step: a virtual key's allowed models, rate limits and budgets, per request.

Before the call: the requested model group must be allowed; every rate limit of key,
user and team (and their per-model limits) is checked with the request's estimated
tokens; every budget reserves the request's maximum cost (estimated prompt tokens plus
``max_tokens`` at the prices of the group's first deployment). When the request is over
(answered, failed, stream finished or cut off) the limits are settled with the tokens the
upstream reported and the budgets with the cost the accounting step computed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

from lockgate.core.accounting import Pricer, estimate_prompt_tokens
from lockgate.core.errors import PermissionDenied
from lockgate.core.gate import LATER, Finish, Later
from lockgate.core.router import ModelGroup
from lockgate.core.tasks import TaskTracker
from lockgate.core.types import JSON, Principal, RequestContext, Usage
from lockgate.features.budgets import BudgetEngine, LocalBudgets, Reservation
from lockgate.features.instant import InstantBudgets, InstantLimiter
from lockgate.features.local_admit import LocalAdmission, used_tokens
from lockgate.features.ratelimit import Grant, LocalRateLimiter, RateLimiter, Ticket

if TYPE_CHECKING:  # Redis's engines (and redis-py) are loaded only where configured
    from lockgate.features.shared_admit import SharedAdmission

log = logging.getLogger("lockgate.limits")
# asyncio.gather answers a list, which typeshed calls a tuple: compiled (lockgate/compiled.py),
# the call's result would be checked for a tuple.
_gather: Callable[..., Awaitable[list[Any]]] = asyncio.gather
DEFAULT_OUTPUT_TOKENS = 512  # a chat request without max_tokens (the pipeline's estimate)


def output_tokens(body: JSON) -> int:
    """The most a request may generate: its max_tokens, else a default for chat."""
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(limit, int) and limit > 0:
        return limit
    return DEFAULT_OUTPUT_TOKENS if "messages" in body else 0


def input_tokens(body: JSON) -> int:
    if "messages" in body:
        return estimate_prompt_tokens(body)
    size = len(str(body.get("input") or ""))
    return -(-size // 4)


class Governor:
    """The ``Gate`` of core/gate.py."""

    def __init__(
        self,
        limiter: RateLimiter,
        budgets: BudgetEngine,
        pricer: Pricer,
        tasks: TaskTracker,
        shared: SharedAdmission | None = None,
    ) -> None:
        self.limiter = limiter
        self.budgets = budgets
        self.pricer = pricer
        self.tasks = tasks
        # Per model group: its first deployment's flat prices (or None: quote each time).
        self._rates: dict[ModelGroup, tuple[int, int] | None] = {}
        # In-process engines answer at once: admitted and settled without awaiting.
        self._local: LocalAdmission | None = (
            LocalAdmission(limiter, budgets)
            if isinstance(limiter, LocalRateLimiter) and isinstance(budgets, LocalBudgets)
            else None
        )
        # Shared engines admit from this replica's credit and leases where they can,
        # without waiting for Redis: in one step once both are there (``shared``, over
        # these same engines), else one by one.
        self._shared = shared
        self._instant: tuple[InstantLimiter, InstantBudgets] | None = (
            (limiter, budgets)
            if isinstance(limiter, InstantLimiter) and isinstance(budgets, InstantBudgets)
            else None
        )

    def admit_now(
        self, ctx: RequestContext, group: ModelGroup, body: JSON
    ) -> Finish | Literal[Later.LATER] | None:
        principal = ctx.principal
        if principal is None:
            return None
        allowed = principal.allowed_models
        if allowed is not None and group.name not in allowed:
            raise PermissionDenied(
                f"This API key is not allowed to use the model {group.name!r}.",
                param="model",
                code="model_not_allowed",
            )
        if not principal.limits and not principal.budgets:
            return None
        if self._local is None and self._shared is None:
            return LATER
        prompt, output = input_tokens(body), output_tokens(body)
        max_cost = self._max_cost(group, prompt, output) if principal.budgets else 0
        if self._local is not None:
            return self._local.admit(ctx, principal, group.name, prompt + output, max_cost)
        assert self._shared is not None
        shared = self._shared.admit(ctx, principal, group.name, prompt + output, max_cost)
        return LATER if shared is None else shared

    async def admit(self, ctx: RequestContext, group: ModelGroup, body: JSON) -> Finish | None:
        """``admit_now``, else ``admit_later``."""
        now = self.admit_now(ctx, group, body)
        return await self.admit_later(ctx, group, body) if now is LATER else now

    async def admit_later(
        self, ctx: RequestContext, group: ModelGroup, body: JSON
    ) -> Finish | None:
        """What ``admit_now`` could not answer: a shared engine without credit or leases
        for it (a round trip to Redis)."""
        principal = ctx.principal
        assert principal is not None  # admit_now answers for requests without one
        prompt, output = input_tokens(body), output_tokens(body)
        if self._instant is not None:
            instant = await self._admit_instant(ctx, principal, group, prompt, output)
            if instant is not None:
                return instant
        ticket: Ticket | None = None
        reservation: Reservation | None = None
        if principal.limits and principal.budgets:
            ticket, reservation = await self._check_and_reserve(
                ctx, principal, group, prompt, output
            )
            return lambda: self._finish(ctx, ticket, reservation)
        if principal.limits:
            grant = await self.limiter.check(
                principal.limits, model=group.name, tokens=prompt + output
            )
            ctx.limit_headers = grant.headers
            ticket = grant.ticket
        if principal.budgets:
            reservation = await self.budgets.reserve(
                principal.budgets, self._max_cost(group, prompt, output)
            )
        return lambda: self._finish(ctx, ticket, reservation)

    async def _admit_instant(
        self, ctx: RequestContext, principal: Principal, group: ModelGroup, prompt: int, output: int
    ) -> Finish | None:
        """Admitted on credit where the limits allow it (else None: nothing was taken), the
        budgets then reserved on a lease, or in Redis when no lease has room."""
        assert self._instant is not None
        limiter, budgets = self._instant
        ticket: Ticket | None = None
        if principal.limits:
            grant = limiter.try_check(principal.limits, group.name, prompt + output)
            if grant is None:
                return None
            ctx.limit_headers = grant.headers
            ticket = grant.ticket
        reservation: Reservation | None = None
        if principal.budgets:
            max_cost = self._max_cost(group, prompt, output)
            reservation = budgets.try_reserve(principal.budgets, max_cost)
            if reservation is None:
                try:
                    reservation = await self.budgets.reserve(principal.budgets, max_cost)
                except BaseException:
                    if ticket is not None:  # refused: give the estimated tokens back
                        self._finish(ctx, ticket, None, refused=True)
                    raise
        return lambda: self._finish(ctx, ticket, reservation)

    async def _check_and_reserve(
        self, ctx: RequestContext, principal: Principal, group: ModelGroup, prompt: int, output: int
    ) -> tuple[Ticket, Reservation]:
        """Both at once, so a request waits for one round trip to Redis, not two. When
        either refuses, what the other took is given back; a rate limit is reported
        before a budget, as when they ran one after the other."""
        gathered = await _gather(
            self.limiter.check(principal.limits, model=group.name, tokens=prompt + output),
            self.budgets.reserve(principal.budgets, self._max_cost(group, prompt, output)),
            return_exceptions=True,
        )
        checked: Grant | BaseException = gathered[0]
        reserved: Reservation | BaseException = gathered[1]
        if isinstance(checked, BaseException):
            if not isinstance(reserved, BaseException):
                self._spawn(ctx, None, reserved, refused=True)  # released, nothing spent
            raise checked
        if isinstance(reserved, BaseException):
            self._spawn(ctx, checked.ticket, None, refused=True)
            raise reserved
        ctx.limit_headers = checked.headers
        return checked.ticket, reserved

    def _max_cost(self, group: ModelGroup, prompt: int, output: int) -> int:
        """The most a request may cost: its tokens at the group's first deployment's prices
        (quoted, not counted as spent)."""
        dep = group.deployments[0]
        try:
            rates = self._rates[group]
        except KeyError:
            rates = self._rates[group] = self.pricer.flat_rates(dep.id, dep.provider, dep.model)
        if rates is not None:
            return prompt * rates[0] + output * rates[1]
        return self.pricer.quote(dep.id, dep.provider, dep.model, Usage(prompt, output)).nanos

    def _finish(
        self,
        ctx: RequestContext,
        ticket: Ticket | None,
        reservation: Reservation | None,
        refused: bool = False,
    ) -> None:
        """Settle what a shared engine can in process (credit, leases); the rest in Redis."""
        if self._instant is not None:
            limiter, budgets = self._instant
            if ticket is not None and limiter.try_settle(ticket, _tokens(ctx, refused)):
                ticket = None
            if reservation is not None and budgets.try_settle(reservation, max(0, ctx.cost or 0)):
                reservation = None
            if ticket is None and reservation is None:
                return
        self._spawn(ctx, ticket, reservation, refused)

    async def close(self) -> None:
        """Give back what shared engines hold for this replica (at shutdown)."""
        if self._instant is not None:
            for engine in self._instant:
                await engine.close()

    def _spawn(
        self,
        ctx: RequestContext,
        ticket: Ticket | None,
        reservation: Reservation | None,
        refused: bool = False,
    ) -> None:
        self.tasks.spawn(self._settle(ctx, ticket, reservation, refused), name="limits:settle")

    async def _settle(
        self,
        ctx: RequestContext,
        ticket: Ticket | None,
        reservation: Reservation | None,
        refused: bool,
    ) -> None:
        try:
            if ticket is not None:
                await self.limiter.settle(ticket, _tokens(ctx, refused))
            if reservation is not None:
                await self.budgets.settle(reservation, max(0, ctx.cost or 0))
        except Exception:  # the engines fail open themselves; this is a bug, not an outage
            log.exception("settling a request's limits and budget failed")


def _tokens(ctx: RequestContext, refused: bool) -> int:
    """What the request really used (0 when refused or nothing was answered)."""
    return 0 if refused else used_tokens(ctx)

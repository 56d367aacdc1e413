"""The admit step in one process: a principal's rate limits and budgets at once.

A request against in-process engines touches what its principal counts against: the GCRA
cells of its limits (ratelimit.py) and today's counters of its budgets (budgets.py). They
are found once per principal and model and kept in an ``Account``; a request then tests
every cell and counter, commits only when all admit it, and gets its ``Finish`` (a
partial of ``_settle``), which corrects them when it is over. This is the engines' own
arithmetic (``charge``, ``Counters.no_room``, ``hold``, ``correct``, ``release``), with
the look-ups, plans and tickets of a separate check and reservation left out: it runs
for every request.

Nothing is taken before everything admits the request. A refusing limit raises its
refusal (message and headers) from the limiter; a budget without room goes the long way,
``reserve_now``, which first releases lost reservations and then reserves or refuses.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Final

from lockgate.core.gate import Finish
from lockgate.core.memo import ByIdentity
from lockgate.core.types import Principal, RequestContext
from lockgate.features.budgets import Counters, Hold, LocalBudgets
from lockgate.features.ratelimit import US, CellPlan, LocalRateLimiter, charge, commit

log = logging.getLogger("lockgate.limits")
DAY = 86_400


def used_tokens(ctx: RequestContext) -> int:
    """The tokens a request really used, as the upstream reported them (0: none)."""
    usage = ctx.usage
    return usage.prompt_tokens + usage.completion_tokens if usage is not None else 0


class Account:
    """What one principal's requests for one model count against, found once."""

    __slots__ = ("cells", "charged", "counters", "epoch", "holds", "limits", "plan", "until")

    def __init__(
        self,
        plan: CellPlan,
        holds: tuple[Hold, ...],
        counters: tuple[Counters, ...],
        epoch: int,
        until: float,
    ) -> None:
        self.plan = plan
        self.cells = plan.cells
        self.charged = plan.charged  # the token cells, corrected when the request is over
        self.holds = holds
        self.counters = counters
        self.limits = tuple(hold.budget.limit for hold in holds)
        # The engines' sweeps (their ``generation`` summed) when it was found: both only
        # grow, so the sum moves whenever either does.
        self.epoch = epoch
        self.until = until  # epoch seconds: the end of the UTC day it was found in


class LocalAdmission:
    """In-process limits and budgets admitted together (the Governor's local path)."""

    _SWEEP_EVERY: Final = 4096  # requests between the engines' sweeps

    def __init__(
        self,
        limiter: LocalRateLimiter,
        budgets: LocalBudgets,
    ) -> None:
        self.limiter = limiter
        self.budgets = budgets
        self._wall = budgets.clock  # epoch seconds: budget periods, reservations' expiry
        self._monotonic = limiter.clock  # seconds: the cells' TATs
        self._accounts: ByIdentity[Account] = ByIdentity()
        self._account_of = self._find  # bound once, not per request
        self._requests = 0

    def admit(
        self, ctx: RequestContext, principal: Principal, model: str, tokens: int, max_cost: int
    ) -> Finish:
        """Admit a request of ``tokens`` (estimated) that may cost ``max_cost``, or raise
        RateLimitExceeded / BudgetExceeded having taken nothing. Written out, with few
        calls (and no ``zip(strict=True)``: a keyword parse): it runs for every request."""
        limiter, budgets = self.limiter, self.budgets
        wall = self._wall()
        now = int(self._monotonic() * US)
        self._requests += 1
        if self._requests % self._SWEEP_EVERY == 0:
            limiter.sweep(now)
            budgets.sweep(wall)
        account = self._accounts.get(principal, model, self._account_of)
        if wall >= account.until or account.epoch != limiter.generation + budgets.generation:
            self._accounts.clear()  # a new day, or a sweep: found again
            account = self._accounts.get(principal, model, self._account_of)
        cells = account.cells
        waits = charge(cells, tokens, now)
        if waits is None:
            limiter.refuse(account.plan, tokens, now)
        rid: str | int = 0
        if account.counters:
            # zip(strict=True) costs a keyword parse: these are of one length
            for c, limit in zip(account.counters, account.limits):  # noqa: B905
                # Counters.no_room, written out
                if c.spent >= limit or c.spent + c.reserved + max_cost > limit:
                    # the long way: expire lost reservations, or refuse
                    rid = budgets.reserve_now(account.holds, max_cost, wall).id
                    break
            else:
                rid = budgets.hold(account.counters, max_cost, wall)
        if cells:
            ctx.limit_headers = commit(cells, waits, now)
        return partial(self._settle, account, ctx, tokens, rid)

    def _settle(self, account: Account, ctx: RequestContext, tokens: int, rid: str | int) -> None:
        """The request is over: its real tokens on the cells (charged ``tokens``), its cost
        on the budgets (reservation ``rid``)."""
        try:
            usage = ctx.usage  # used_tokens, written out
            used = usage.prompt_tokens + usage.completion_tokens if usage is not None else 0
            if used != tokens and account.charged:
                self.limiter.correct(account.charged, tokens, used)
            if account.counters:
                cost = ctx.cost or 0
                self.budgets.release(account.holds, account.counters, rid, cost if cost > 0 else 0)
        except Exception:
            log.exception("settling a request's limits and budget failed")

    def _find(self, principal: Principal, model: str) -> Account:
        limiter, budgets = self.limiter, self.budgets
        wall = self._wall()
        plan = limiter.plan_for(principal.limits, model)
        holds, counters = budgets.counters_for(principal.budgets, wall)
        until = (wall // DAY + 1) * DAY
        return Account(plan, holds, counters, limiter.generation + budgets.generation, until)

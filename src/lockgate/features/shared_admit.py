"""The admit step on shared engines, in one step while this replica's credit and lease
have room: what ``LocalAdmission`` (local_admit.py) is to the in-process engines.

Under steady load a principal's requests are admitted from this replica's credit on each
of its rate limits (limit_credits.py) and reserved on its lease of its budgets
(budget_leases.py), without waiting for Redis. Those credits and that lease are found
once per principal and model and kept in an ``Account``; a request then reserves its
maximum cost on the lease, takes its costs from the credits, and gets its ``Finish`` (a
partial of ``_settle``), which corrects both when it is over. This is the engines' own
arithmetic (``take_from``, ``take_on``, ``adjust_from``, ``settle_on``), with the
look-ups by key, the selections, plans, grants, tickets and reservations of separate
calls left out.

When anything is missing (a credit not yet granted or past its life, a lease without
room, Redis away) nothing is taken and ``admit`` returns None: the Governor's other
paths (the credit and lease one after the other, or Redis) take the request. A credit
or lease made or dropped since an account was found (the engines' ``generation``
counters), or a new UTC day (the budgets' periods), has it found again.
"""

from __future__ import annotations

import logging
from functools import partial

from lockgate.core.gate import Finish
from lockgate.core.memo import ByIdentity
from lockgate.core.tasks import TaskTracker
from lockgate.core.types import Principal, RequestContext
from lockgate.features.budget_leases import Lease, settle_on
from lockgate.features.budgets_redis import RedisBudgets
from lockgate.features.limit_credits import Credit
from lockgate.features.local_admit import DAY, used_tokens
from lockgate.features.ratelimit import Cell, Rule, Ticket, corrections, headers_of_cells
from lockgate.features.ratelimit_redis import RedisRateLimiter

log = logging.getLogger("lockgate.limits")


class Account:
    """What one principal's requests for one model take from, found once."""

    __slots__ = (
        "cells",
        "charged",
        "charged_credits",
        "credits",
        "generation",
        "lease",
        "rules",
        "until",
        "usable",
    )

    def __init__(
        self,
        rules: list[Rule],
        charged: tuple[Rule, ...],
        credits: list[Credit] | None,
        lease: Lease | None,
        generation: tuple[int, int],
        until: float,
        usable: bool,
    ) -> None:
        self.rules = rules
        self.cells = tuple(Cell(rule) for rule in rules)  # the rules' figures, for headers
        self.charged = charged  # the token limits, corrected when a request is over
        self.credits = tuple(credits or ())  # per rule
        self.charged_credits = tuple(c for c in self.credits if not c.rule.requests)
        self.lease = lease
        self.generation = generation  # the engines' credits and leases when found
        self.until = until  # epoch seconds: the end of the UTC day it was found in
        self.usable = usable  # False: a credit or the lease is missing


class SharedAdmission:
    """Redis-backed limits and budgets admitted together on this replica's credit and
    lease (the Governor's first path when the engines are shared)."""

    def __init__(
        self, limiter: RedisRateLimiter, budgets: RedisBudgets, tasks: TaskTracker
    ) -> None:
        self.limiter = limiter
        self.budgets = budgets
        self.tasks = tasks
        self.credits = limiter.credits
        self.leases = budgets.leases
        self._wall = budgets.clock  # epoch seconds: the budgets' periods
        self._accounts: ByIdentity[Account] = ByIdentity()
        self._account_of = self._find  # bound once, not per request

    def admit(
        self, ctx: RequestContext, principal: Principal, model: str, tokens: int, max_cost: int
    ) -> Finish | None:
        """Admit a request of ``tokens`` (estimated) that may cost ``max_cost`` on this
        replica's credit and lease, or None having taken nothing."""
        if self.limiter.failopen.down or self.budgets.failopen.down:
            return None  # the fail-open path probes for Redis's return
        account = self._accounts.get(principal, model, self._account_of)
        if (
            account.generation[0] != self.credits.generation
            or account.generation[1] != self.leases.generation
            or (account.lease is not None and self._wall() >= account.until)
        ):
            self._accounts.clear()  # a credit or lease came or went, or a new day
            account = self._accounts.get(principal, model, self._account_of)
        if not account.usable:
            return None
        lease = account.lease
        if lease is not None and not self.leases.take_on(lease, max_cost):
            return None
        rules = account.rules
        if rules:
            costs = [rule.request_cost if rule.requests else rule.cost_us(tokens) for rule in rules]
            waits = self.credits.take_from(account.credits, costs)
            if waits is None:
                if lease is not None:
                    settle_on(lease, max_cost, 0)  # given back: nothing spent
                return None
            ctx.limit_headers = headers_of_cells(account.cells, waits)
        return partial(self._settle, account, ctx, tokens, max_cost)

    def _settle(self, account: Account, ctx: RequestContext, tokens: int, max_cost: int) -> None:
        """The request is over: its real tokens on the credits (charged ``tokens``; in
        Redis when a credit went meanwhile), its cost on the lease (``max_cost`` held)."""
        try:
            used = used_tokens(ctx)
            if used != tokens and account.charged:
                self.correct(account, tokens, used)
            if account.lease is not None:
                cost = ctx.cost or 0
                settle_on(account.lease, max_cost, cost if cost > 0 else 0)
        except Exception:
            log.exception("settling a request's limits and budget failed")

    def correct(self, account: Account, estimate: int, used: int) -> None:
        """Charge or refund the difference between the estimate and the tokens used: on
        the credits where they are still this account's, else in Redis."""
        deltas = corrections(account.charged, estimate, used)
        if not any(deltas):  # a large limit's correction is often 0 µs
            return
        if account.generation[0] == self.credits.generation and self.credits.adjust_from(
            account.charged_credits, deltas
        ):
            return
        ticket = Ticket(account.charged, estimate, "credit")
        self.tasks.spawn(self.limiter.settle(ticket, used), name="limits:settle")

    def _find(self, principal: Principal, model: str) -> Account:
        wall = self._wall()
        selected = self.limiter.select(principal.limits, model)
        credits = self.credits.find(selected.rules)
        lease = None
        if principal.budgets:
            holds = self.budgets.holds(principal.budgets, wall)
            lease = self.leases.find(holds) if holds else None
        usable = (credits is not None or not selected.rules) and (
            lease is not None or not principal.budgets
        )
        generation = (self.credits.generation, self.leases.generation)
        until = (wall // DAY + 1) * DAY
        return Account(selected.rules, selected.charged, credits, lease, generation, until, usable)

"""Budgets per key, user and team: reserve a request's maximum cost, settle its real cost.

Before the call the pipeline reserves the most the request can cost (prompt tokens plus
``max_tokens`` at the model's prices) on every applicable budget at once; it is refused
when any budget's ``spent + reserved + max_cost`` would pass its limit. After the call
``settle`` releases the reservation and adds the real cost (a stream cut short is billed
for what was produced). So concurrent requests overshoot a hard budget by no more than
the difference between what is in flight and what it really costs, and never once the
budget is spent. A reservation that is never settled (a crashed replica) expires.

Periods are UTC: daily from midnight, weekly from Monday, monthly from the 1st; each
period has its own counters, so a new period starts at 0. Soft alerts fire once per
period and scope when settled spend crosses a fraction of the limit: a log event
(``lockgate.limits``, ``budget_alert``) and ``lockgate_budget_alerts``.
Amounts are ints of ``money.MONEY_UNIT``.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, Literal, NamedTuple, Protocol
from urllib.parse import quote

from lockgate.core.errors import BudgetExceeded
from lockgate.core.memo import ByIdentity, UniqueIds
from lockgate.features.limit_metrics import LimitMetrics
from lockgate.features.money import MONEY_UNIT, format_usd

log = logging.getLogger("lockgate.limits")

Period = Literal["daily", "weekly", "monthly"]
DEFAULT_RESERVATION_TTL = 1800.0  # seconds; longer than any call a deployment allows
_KEEP_AFTER_PERIOD = 86_400.0  # a finished period's counters stay a day for late settles
_PER = {"daily": "per day ", "weekly": "per week ", "monthly": "per month "}


@dataclass(frozen=True, slots=True)
class Budget:
    """One scope's hard budget as stored: ``limit`` money units per ``period`` (None: for
    ever). ``spent`` is what the ledger recorded in the period that began at
    ``spent_since``; it seeds the counters when the engine has none (after a restart or a
    Redis flush) and repairs them if the ledger knows more. It is ignored for any other
    period, so a figure loaded before midnight never carries into the next day."""

    scope: str  # key, user, team: a metric label, so a small fixed set
    scope_id: str
    limit: int
    period: Period | None = None
    alerts: tuple[float, ...] = (0.8,)  # soft thresholds, fractions of the limit
    spent: int = 0
    spent_since: datetime | None = None

    def alert_amounts(self) -> list[tuple[str, int]]:
        return [(f"{t:g}", math.ceil(self.limit * t)) for t in self.alerts]


@dataclass(frozen=True, slots=True)
class Hold:
    """A budget's counters for the period a reservation was made in."""

    budget: Budget
    period: str  # "d2026-11-24", "w2026-11-23", "m2026-11-01" (the start), or "total"
    resets_at: float | None  # epoch seconds of the next period, None for ever
    floor: int  # the ledger's spend for this period, or -1 when it does not apply
    key: str = field(init=False)  # the counters' name: scope, id and period
    alerts: tuple[tuple[str, int], ...] = field(init=False)  # (label, amount) to alert at
    alert_floor: float = field(init=False)  # the smallest amount (inf: no alerts)

    def __post_init__(self) -> None:
        budget = self.budget
        key = f"{budget.scope}:{quote(budget.scope_id, safe='')}:{self.period}"
        object.__setattr__(self, "key", key)
        alerts = tuple(budget.alert_amounts())
        object.__setattr__(self, "alerts", alerts)
        object.__setattr__(self, "alert_floor", min((a for _, a in alerts), default=math.inf))

    def keep_until(self) -> float | None:
        """When the counters may be dropped: after the period, once late settles are in."""
        return None if self.resets_at is None else self.resets_at + _KEEP_AFTER_PERIOD


class Reservation(NamedTuple):  # a tuple: made once per request, cheaply
    id: str | int  # unique where the reservation lives (a count in process, else a str)
    amount: int
    holds: tuple[Hold, ...]
    backend: str  # "local" or "redis": where the reservation lives


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    scope: str
    scope_id: str
    threshold: str  # as configured, e.g. "0.8"
    spent: int
    limit: int
    period: str


class BudgetEngine(Protocol):
    async def reserve(self, budgets: Iterable[Budget], max_cost: int) -> Reservation:
        """Hold ``max_cost`` on every budget at once, or raise BudgetExceeded holding
        nothing."""
        ...

    async def settle(self, reservation: Reservation, cost: int) -> list[BudgetAlert]:
        """Release the reservation and add the real ``cost``; call it exactly once. Returns
        the soft alerts this crossed (already logged and counted)."""
        ...


def period_bounds(period: Period, now: datetime) -> tuple[datetime, datetime]:
    """The UTC period containing ``now``: [start, end)."""
    day = datetime(now.year, now.month, now.day, tzinfo=UTC)
    if period == "daily":
        return day, day + timedelta(days=1)
    if period == "weekly":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    start = day.replace(day=1)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, end


def plan(budgets: Iterable[Budget], now: float) -> list[Hold]:
    """The counters a request at ``now`` (epoch seconds) reserves on, each scope once."""
    holds: dict[tuple[str, str], Hold] = {}
    moment = datetime.fromtimestamp(now, UTC)
    for budget in budgets:
        if budget.limit < 0:
            raise ValueError(f"budget limit must be >= 0, got {budget.limit}")
        if budget.period is None:
            hold = Hold(budget, "total", None, budget.spent)
        else:
            start, end = period_bounds(budget.period, moment)
            ledger = budget.spent_since is not None and budget.spent_since == start
            period = f"{budget.period[0]}{start:%Y-%m-%d}"
            hold = Hold(budget, period, end.timestamp(), budget.spent if ledger else -1)
        holds.setdefault((budget.scope, budget.scope_id), hold)
    return list(holds.values())


class Plans:
    """``plan`` remembered per budgets tuple for the UTC day (periods start and end at
    midnight)."""

    def __init__(self) -> None:
        self._seen: ByIdentity[list[Hold]] = ByIdentity()

    def __call__(self, budgets: Iterable[Budget], now: float) -> list[Hold]:
        return self._seen.get(budgets, int(now // 86_400), _plan_of_day)


def _plan_of_day(budgets: Iterable[Budget], day: int) -> list[Hold]:
    return plan(budgets, day * 86_400.0)


# Reservation ids: unique across replicas, without a random read per request.
new_id = UniqueIds()


def refusal(
    hold: Hold, spent: int, reserved: int, amount: int, metrics: LimitMetrics | None
) -> BudgetExceeded:
    budget = hold.budget
    if metrics is not None:
        metrics.refused(budget.scope)
    per = _PER[budget.period] if budget.period else ""
    if hold.resets_at is None:
        resets = "It does not reset."
    else:
        at = datetime.fromtimestamp(hold.resets_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        resets = f"It resets at {at}."
    held = f" and {format_usd(reserved)} held by requests in flight" if reserved else ""
    return BudgetExceeded(
        f"Budget exceeded for this {budget.scope}: {format_usd(spent)} spent{held} of "
        f"{format_usd(budget.limit)} {per}and this request may cost up to "
        f"{format_usd(amount)}. {resets}",
        scope=budget.scope,
    )


def alerted(hold: Hold, threshold: str, spent: int, metrics: LimitMetrics | None) -> BudgetAlert:
    budget = hold.budget
    alert = BudgetAlert(budget.scope, budget.scope_id, threshold, spent, budget.limit, hold.period)
    if metrics is not None:
        metrics.alert(budget.scope, float(threshold))
    log.warning(
        "budget_alert: %s %s spent %d of %d %s (threshold %s) in period %s",
        budget.scope, budget.scope_id, spent, budget.limit, MONEY_UNIT, threshold, hold.period,
        extra={"event": "budget_alert", "scope": budget.scope, "scope_id": budget.scope_id,
               "threshold": threshold, "spent": spent, "limit": budget.limit,
               "unit": MONEY_UNIT, "period": hold.period},
    )  # fmt: skip
    return alert


@dataclass(slots=True)
class Counters:
    """One scope's counters for one period."""

    keep_until: float | None
    spent: int = 0
    reserved: int = 0
    held: dict[str | int, tuple[int, float]] = field(default_factory=dict)  # id -> amount, expiry
    next_expiry: float = math.inf  # no held reservation expires before this
    fired: set[str] = field(default_factory=set)

    def no_room(self, limit: int, amount: int) -> bool:
        return self.spent >= limit or self.spent + self.reserved + amount > limit

    def expire(self, now: float) -> None:
        """Release reservations past their expiry (never settled: a lost request). Only
        a refusal needs this to be exact, so it runs then (and in the sweep), not on every
        reservation: an expired hold only makes a budget look fuller than it is."""
        if now < self.next_expiry:
            return
        soonest = math.inf
        for rid, (amount, expiry) in list(self.held.items()):
            if expiry <= now:
                del self.held[rid]
                self.reserved -= amount
            elif expiry < soonest:
                soonest = expiry
        self.next_expiry = soonest


class LocalBudgets:
    """Budgets in this process's memory: exact for one replica, per replica for many."""

    _SWEEP_EVERY: Final = 1024  # operations between drops of finished periods' counters

    def __init__(
        self,
        *,
        metrics: LimitMetrics | None = None,
        clock: Callable[[], float] = time.time,
        reservation_ttl: float = DEFAULT_RESERVATION_TTL,
    ) -> None:
        self._counters: dict[str, Counters] = {}
        self._plans = Plans()
        self._metrics = metrics
        self.clock = clock
        self.reservation_ttl = reservation_ttl
        self._ops = 0
        self._ids = itertools.count(1)  # reservations here are only ever seen here
        self.generation = 0  # sweeps so far: counters opened before one may be stale

    def _open(self, hold: Hold) -> Counters:
        counters = self._counters.get(hold.key)
        if counters is None:
            counters = self._counters[hold.key] = Counters(hold.keep_until())
        if hold.floor > counters.spent:
            counters.spent = hold.floor
        return counters

    def sweep(self, now: float) -> None:
        """Drop finished periods' counters, release expired reservations."""
        self._counters = {
            key: c
            for key, c in self._counters.items()
            if c.keep_until is None or c.keep_until > now
        }
        for c in self._counters.values():
            c.expire(now)
        self.generation += 1

    def counters_for(
        self, budgets: Iterable[Budget], now: float
    ) -> tuple[tuple[Hold, ...], tuple[Counters, ...]]:
        """The holds of a request at ``now`` and their counters, opened, valid for the
        UTC day and until ``generation`` moves."""
        holds = tuple(self._plans(budgets, now))
        return holds, tuple(self._open(hold) for hold in holds)

    def hold(self, counters: Iterable[Counters], amount: int, now: float) -> int:
        """Reserve ``amount`` on every counter (already found to have room): the
        reservation's id."""
        rid, expiry = next(self._ids), now + self.reservation_ttl
        hold_of = (amount, expiry)
        for c in counters:
            c.reserved += amount
            c.held[rid] = hold_of
            if expiry < c.next_expiry:
                c.next_expiry = expiry
        return rid

    async def reserve(self, budgets: Iterable[Budget], max_cost: int) -> Reservation:
        return self.reserve_budgets(budgets, max_cost)

    def reserve_budgets(self, budgets: Iterable[Budget], max_cost: int) -> Reservation:
        """``reserve`` without suspending: in-process counters answer at once."""
        now = self.clock()
        return self.reserve_now(self._plans(budgets, now), max_cost, now)

    def reserve_now(
        self, holds: Sequence[Hold], max_cost: int, now: float | None = None
    ) -> Reservation:
        if max_cost < 0:
            raise ValueError(f"max_cost must be >= 0, got {max_cost}")
        if now is None:
            now = self.clock()
        self._ops += 1
        if self._ops % self._SWEEP_EVERY == 0:
            self.sweep(now)
        opened = [self._open(hold) for hold in holds]
        for hold, c in zip(holds, opened, strict=True):
            if c.no_room(hold.budget.limit, max_cost):
                c.expire(now)  # lost reservations may be holding the room
                if c.no_room(hold.budget.limit, max_cost):
                    raise refusal(hold, c.spent, c.reserved, max_cost, self._metrics)
        return Reservation(self.hold(opened, max_cost, now), max_cost, tuple(holds), "local")

    async def settle(self, reservation: Reservation, cost: int) -> list[BudgetAlert]:
        return self.settle_now(reservation, cost)

    def settle_now(self, reservation: Reservation, cost: int) -> list[BudgetAlert]:
        if cost < 0:
            raise ValueError(f"cost must be >= 0, got {cost}")
        holds = reservation.holds
        return self.release(holds, [self._open(hold) for hold in holds], reservation.id, cost)

    def release(
        self, holds: Sequence[Hold], counters: Sequence[Counters], rid: str | int, cost: int
    ) -> list[BudgetAlert]:
        """Settle reservation ``rid`` on its holds' counters with the real ``cost``."""
        alerts: list[BudgetAlert] = []
        # zip(strict=True) costs a keyword parse: holds and counters are of one length
        for hold, c in zip(holds, counters):  # noqa: B905
            held = c.held.pop(rid, None)
            if held is not None:
                c.reserved -= held[0]
            c.spent += cost
            if c.spent < hold.alert_floor:  # under every alert (every request, mostly)
                continue
            for threshold, amount in hold.alerts:
                if c.spent >= amount and threshold not in c.fired:
                    c.fired.add(threshold)
                    alerts.append(alerted(hold, threshold, c.spent, self._metrics))
        return alerts

    def usage(self, budget: Budget) -> tuple[int, int]:
        """(spent, reserved) of ``budget`` in the current period: for tests and admin."""
        now = self.clock()
        c = self._open(plan([budget], now)[0])
        c.expire(now)
        return c.spent, c.reserved

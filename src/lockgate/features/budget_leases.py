"""Shared budgets without a Redis round trip per request: each replica leases a slice.

A replica that sees steady traffic on a large budget reserves a slice of it in Redis (a
*lease*: one reservation, as a request's, under the lease's id) and then reserves and
settles its requests against that slice in process. Every ``FLUSH_EVERY`` seconds one
script call per lease moves the spend settled meanwhile into the budget's ``spent``,
fires the soft alerts that crosses, and tops the slice up (or gives it back). Redis's
counters therefore always cover this replica's requests: ``spent + reserved`` there is
at least what was really spent plus the most the requests in flight may cost, so a hard
budget is never passed by more than the per-request path would let it be.

A lease is only taken when its slice is small against the budget: ``LEASE_REQUESTS``
requests' maximum cost, at most ``1/LEASE_RATIO`` of the limit (a slice used up between
two flushes doubles, up to that bound, to follow the traffic), and the script grants at
most ``1/LEASE_SHARE`` of what the budget still has free. Small budgets, and budgets
near their end, are reserved per request in Redis as before, exactly. The cost of the
lease: a request refused by Redis may have been admitted if another replica had not held
unused credit (at most a slice per replica), and a lease not used for ``IDLE_RELEASE``
seconds is given back. A replica that dies holding a lease leaves it to expire in Redis
after ``LEASE_TTL`` seconds, as a lost request's reservation expires.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from lockgate.core.memo import ByIdentity
from lockgate.core.tasks import Recurring, TaskTracker
from lockgate.features.budgets import Hold, Reservation, new_id

log = logging.getLogger("lockgate.limits")

LEASE_REQUESTS = 64  # a slice holds this many requests' maximum cost
LEASE_RATIO = 256  # ... and at most this fraction of a budget's limit, or no lease
LEASE_SHARE = 4  # the script grants at most 1/4 of what a budget has free
FLUSH_EVERY = 0.02  # seconds between flushes of settled spend
IDLE_RELEASE = 1.0  # seconds unused before a lease's credit is given back
LEASE_TTL = 30.0  # seconds Redis keeps a lease that is no longer flushed

# Called with (holds, lease id, spend to add, amount kept reserved, top-up wanted, now):
# returns (top-up granted, each budget's spend after, alerts fired as (index, label)).
Flush = Callable[
    [Sequence[Hold], str, int, int, int, float],
    Awaitable[tuple[int, list[int], list[tuple[int, str]]]],
]
Alerted = Callable[[Hold, str, int], object]


class Lease:
    """One replica's slice of a set of budgets (a request's holds)."""

    __slots__ = (
        "busy",
        "flushing",
        "held",
        "holds",
        "id",
        "inflight",
        "name",
        "pending",
        "returning",
        "used_at",
        "want",
    )  # fmt: skip

    def __init__(self, name: str, holds: Sequence[Hold], want: int, now: float) -> None:
        self.name = name  # its holds' keys
        self.id = f"lease-{new_id()}"
        self.holds = tuple(holds)
        self.held = 0  # reserved in Redis under this lease's id, as last confirmed
        self.inflight = 0  # the maximum costs of requests admitted on it, not yet settled
        self.pending = 0  # settled spend not yet sent
        self.flushing = 0  # settled spend being sent
        self.returning = 0  # credit being given back
        self.want = want  # the slice to hold: LEASE_REQUESTS requests' maximum cost
        self.used_at = now
        self.busy = False

    def credit(self) -> int:
        return self.held - self.inflight - self.pending - self.flushing - self.returning


class BudgetLeases:
    """The leases of one engine. ``take`` and ``settle`` never wait; ``flush`` talks to
    Redis from one background task, which runs while any lease is held."""

    def __init__(
        self,
        flush: Flush,
        tasks: TaskTracker,
        alerted: Alerted,
        clock: Callable[[], float] = time.monotonic,
        enabled: bool = True,
    ) -> None:
        self.enabled = enabled  # False: every reservation goes to Redis
        self._flush = flush
        self._alerted = alerted
        self._clock = clock
        self._leases: dict[str, Lease] = {}  # by its holds' keys
        self._by_id: dict[str | int, Lease] = {}
        self.generation = 0  # counts leases made and dropped: what ``find`` found is stale
        self._names: ByIdentity[str] = ByIdentity()
        self._flusher = Recurring(
            tasks, "budgets-leases", FLUSH_EVERY, lambda: self._flush_all(release=False),
            lambda: bool(self._leases),
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self._leases)

    def take(self, holds: Sequence[Hold], max_cost: int) -> Reservation | None:
        """Reserve ``max_cost`` on a lease, or None: reserve in Redis (and, when the budget
        is large, a lease is asked for meanwhile)."""
        name = self._names.get(holds, 0, _lease_name)
        lease = self._leases.get(name)
        if lease is None:
            want = max_cost * LEASE_REQUESTS
            if self._flusher.stopped or want == 0 or not self.enabled:
                return None
            if any(want * LEASE_RATIO > h.budget.limit for h in holds):
                return None  # a small budget: reserved per request, exactly
            lease = self._leases[name] = Lease(name, holds, want, self._clock())
            self._by_id[lease.id] = lease
            self.generation += 1
            self._flusher.start()
            return None
        if not self.take_on(lease, max_cost):
            return None
        return Reservation(lease.id, max_cost, lease.holds, "lease")

    def find(self, holds: Sequence[Hold]) -> Lease | None:
        """The lease of ``holds`` as it is now, for ``take_on`` while ``generation`` stays
        the same (a lease with requests in flight on it is never dropped)."""
        return self._leases.get(self._names.get(holds, 0, _lease_name))

    def take_on(self, lease: Lease, max_cost: int) -> bool:
        """Reserve ``max_cost`` on ``lease``; False when it has no room (nothing taken)."""
        if max_cost > lease.want // 2:
            lease.want = max_cost * LEASE_REQUESTS  # larger requests: a larger slice
        if lease.credit() < max_cost:
            if lease.held:  # used up between two flushes: a larger slice next time
                cap = min(h.budget.limit for h in lease.holds) // LEASE_RATIO
                lease.want = max(lease.want, min(lease.want * 2, cap))
            return False
        lease.inflight += max_cost
        lease.used_at = self._clock()
        return True

    def settle(self, reservation: Reservation, cost: int) -> bool:
        """Settle a reservation made on a lease; False when it was not (or is gone)."""
        lease = self._by_id.get(reservation.id)
        if lease is None:
            return False
        settle_on(lease, reservation.amount, cost)
        return True

    async def close(self) -> None:
        """Send what was settled and give every lease back (at shutdown)."""
        await self._flusher.stop()  # after its current sleep and flush
        await self._flush_all(release=True)

    async def _flush_all(self, *, release: bool) -> None:
        now = self._clock()
        due = [lease for lease in self._leases.values() if not lease.busy]
        if due:
            await asyncio.gather(*(self._flush_one(lease, now, release) for lease in due))

    async def _flush_one(self, lease: Lease, now: float, release: bool) -> None:
        idle = release or (now - lease.used_at > IDLE_RELEASE and lease.inflight == 0)
        credit = lease.credit()
        want = 0 if idle else max(0, lease.want - credit)
        give_back = credit if idle and credit > 0 else 0
        if not lease.pending and not want and not give_back and not idle:
            return
        spend, lease.pending = lease.pending, 0
        lease.flushing, lease.returning, lease.busy = spend, give_back, True
        keep = lease.held - spend - give_back
        try:
            granted, spent, fired = await self._flush(
                lease.holds, lease.id, spend, max(keep, 0), want, time.time()
            )
        except Exception as exc:  # Redis away: keep the spend for the next flush
            lease.pending += spend
            lease.flushing = lease.returning = 0
            lease.busy = False
            log.debug("budget lease flush failed: %r", exc)
            if release:
                log.warning("budget lease: %d units of settled spend not sent to Redis", spend)
            return
        lease.held = max(keep, 0) + granted
        lease.flushing = lease.returning = 0
        lease.busy = False
        for index, label in fired:
            self._alerted(lease.holds[index], label, spent[index])
        if idle and lease.held == 0 and lease.inflight == 0 and lease.pending == 0:
            del self._by_id[lease.id], self._leases[lease.name]
            self.generation += 1


def settle_on(lease: Lease, amount: int, cost: int) -> None:
    """A request reserved ``amount`` on ``lease`` is over: ``cost`` is spent."""
    lease.inflight -= amount
    lease.pending += cost


def _lease_name(holds: Sequence[Hold], _: int) -> str:
    return "|".join(hold.key for hold in holds)

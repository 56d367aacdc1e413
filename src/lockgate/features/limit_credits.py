"""Shared rate limits without a Redis round trip per request: each replica takes credit.

When the check script admits a request on a large limit, it also charges the limit's
cell for ``CREDIT_REQUESTS`` more requests' worth (a *credit*) and tells the replica so;
the replica's next requests on that cell are admitted in process from the credit, and a
token estimate corrected afterwards comes out of (or goes back into) it. Before a credit
runs low, or within half its ``credit_life`` of expiring, it is topped up in the
background, so that under steady load requests do not wait for Redis. A credit not
topped up for ``credit_life`` (a window's 1/512, a second at most: the replica's traffic
on that limit stopped) is given back by the same refund a settled estimate uses. A credit
whose top-up is on its way stays usable for one more life: under load a round trip can
take longer than the half life the top-up was sent at (50-100 ms at c64 on 2 cores, with
the event loop saturated), and without that every request would go to Redis until it
came back. Redis's cell always counts at least what was admitted, so N replicas still
enforce one limit.

Credit is only taken on a limit that is large against a request: ``CREDIT_REQUESTS``
requests' worth must be at most ``1/CREDIT_RATIO`` of the window (a credit used up before
its top-up arrived, or half used within half its life, doubles, up to that bound, to
follow the traffic: under steady load a credit is topped up about once a half life, and
one script call tops up every credit a request found low), and the script
grants credit only while the cell stays at most half full. A small limit, or a limit
near its end, is checked per request in Redis, exactly. What credit costs: Redis counts
a request when its credit is taken, somewhat before it is admitted, so the cell runs
ahead of the requests by at most the credit held (1/64 of the window per replica); and
a request refused by Redis could have passed had another replica not held unused credit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from lockgate.core.tasks import Recurring, TaskTracker
from lockgate.features.ratelimit import US, Rule

log = logging.getLogger("lockgate.limits")

CREDIT_REQUESTS = 64  # credit taken at once: this many requests' worth
CREDIT_RATIO = 64  # ... at most 1/64 of the limit's window, or no credit
SWEEP_EVERY = 0.1  # seconds between returns of credit past its life


def credit_life(rule: Rule) -> float:
    """Seconds a credit may be used: a window's 1/512 (117 ms for a minute), 1 s at most."""
    return min(1.0, rule.window_us / US / 512)


class Credit:
    __slots__ = ("busy", "half_life", "left", "life", "now", "rule", "seen", "tat", "until",
                 "want")  # fmt: skip

    def __init__(self, rule: Rule, want: int) -> None:
        self.rule = rule
        self.life = credit_life(rule)
        self.half_life = self.life / 2  # topped up once this close to expiring
        self.left = 0  # µs of the cell charged in Redis and not yet used here
        self.until = 0.0  # monotonic time the credit expires at
        self.tat = 0  # the cell's TAT and the server's time (µs) as last seen, and when
        self.now = 0
        self.seen = 0.0
        self.want = want
        self.busy = False  # a top-up is on its way

    def expired(self, mono: float) -> bool:
        """Past its life; a credit being topped up may be used for one more life while its
        top-up is on its way. (Callers test ``until <= mono`` first: the common case.)"""
        until = self.until
        return mono >= until and (not self.busy or mono >= until + self.life)


# Top-up: charge ``wants`` (µs per rule) as credit; returns (server now, TATs, granted).
TopUp = Callable[[Sequence[Rule], Sequence[int]], Awaitable[tuple[int, list[int], list[int]]]]
# Refund: give back ``amounts`` (µs per rule).
Refund = Callable[[Sequence[Rule], Sequence[int]], Awaitable[object]]


class LimitCredits:
    def __init__(
        self,
        top_up: TopUp,
        refund: Refund,
        tasks: TaskTracker,
        clock: Callable[[], float] = time.monotonic,
        enabled: bool = True,
    ) -> None:
        self.enabled = enabled  # False: every check goes to Redis (exact, one round trip)
        self._top_up = top_up
        self._refund = refund
        self._tasks = tasks
        self._clock = clock
        self._credits: dict[str, Credit] = {}
        self.generation = 0  # counts credits made and dropped: what ``find`` found is stale
        self._sweeper = Recurring(
            tasks, "limits-credits", SWEEP_EVERY, lambda: self._return(self._clock()),
            lambda: bool(self._credits),
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self._credits)

    def wants(self, rules: Sequence[Rule], costs: Sequence[int]) -> list[int]:
        """The credit to ask for with a check in Redis: per rule, 0 where none is due."""
        if self._sweeper.stopped:
            return [0] * len(rules)
        out, mono = [], self._clock()
        for rule, cost in zip(rules, costs, strict=True):
            want = cost * CREDIT_REQUESTS
            credit = self._credits.get(rule.key)
            eligible = want * CREDIT_RATIO <= rule.window_us and self.enabled
            due = credit is None or credit.left < cost or credit.until <= mono
            out.append(want if eligible and due else 0)
        return out

    def take(self, rules: Sequence[Rule], costs: Sequence[int]) -> list[int] | None:
        """Charge ``costs`` to this replica's credit on every rule, or nothing and None.
        Returns how far each cell's TAT as last seen is ahead of the estimated server
        time (µs), for ``headers_of``."""
        found = self.find(rules)
        return None if found is None else self.take_from(found, costs)

    def find(self, rules: Sequence[Rule]) -> list[Credit] | None:
        """The credits of ``rules`` as they are now (None: one has none), for
        ``take_from`` and ``adjust_from`` while ``generation`` stays the same."""
        credits, found = self._credits, []
        for rule in rules:
            credit = credits.get(rule.key)
            if credit is None:
                return None
            found.append(credit)
        return found

    def take_from(self, found: Sequence[Credit], costs: Sequence[int]) -> list[int] | None:
        """``take`` on credits already found (``find``)."""
        mono = self._clock()
        # zip(strict=True) costs a keyword parse: found and costs are of one length
        for credit, cost in zip(found, costs):  # noqa: B905
            if credit.until <= mono and credit.expired(mono):
                return None
            if credit.left < cost:  # used up before its top-up came: take more next time
                rule = credit.rule
                credit.want = min(credit.want * 2, rule.window_us // CREDIT_RATIO)
                if not credit.busy:
                    self._refill([credit])
                return None
        first = found[0]
        now = first.now + int((mono - first.seen) * US)  # the server's time, estimated
        waits = []
        due: list[Credit] = []
        for cost, credit in zip(costs, found):  # noqa: B905 (one length)
            credit.left -= cost
            if not credit.busy:
                if credit.left < credit.want // 2:
                    if mono - credit.seen < credit.half_life:  # half used in under half
                        # its life: hold more, so that top-ups come once a half life
                        credit.want = min(credit.want * 2, credit.rule.window_us // CREDIT_RATIO)
                    due.append(credit)
                elif credit.until - mono < credit.half_life:
                    due.append(credit)
            waits.append(credit.tat - now)
        if due:
            self._refill(due)  # one script call tops up every credit of the request
        return waits

    def granted(
        self, rules: Sequence[Rule], now: int, tats: Sequence[int], got: Sequence[int]
    ) -> None:
        """A check in Redis charged ``got`` (µs per rule) as credit."""
        mono = self._clock()
        for rule, tat, amount in zip(rules, tats, got, strict=True):
            credit = self._credits.get(rule.key)
            if amount <= 0 and credit is None:
                continue
            if credit is None:
                credit = self._credits[rule.key] = Credit(rule, amount)
                self.generation += 1
                self._sweeper.start()
            credit.until = mono + credit.life
            credit.left += amount
            credit.tat, credit.now, credit.seen = tat, now, mono

    def adjust(self, rules: Sequence[Rule], deltas: Sequence[int]) -> bool:
        """Take settled corrections (µs per rule, + charge, - refund) from or into the
        credit of every rule; False, having taken none, when one has no live credit for
        it (the corrections go to Redis)."""
        found = self.find(rules)
        return found is not None and self.adjust_from(found, deltas)

    def adjust_from(self, found: Sequence[Credit], deltas: Sequence[int]) -> bool:
        """``adjust`` on credits found while ``generation`` was what it is now."""
        mono = self._clock()
        # zip(strict=True) costs a keyword parse: found and deltas are of one length
        for credit, delta in zip(found, deltas):  # noqa: B905
            if (credit.until <= mono and credit.expired(mono)) or credit.left < delta:
                return False
        for credit, delta in zip(found, deltas):  # noqa: B905
            credit.left -= delta
        return True

    def _refill(self, credits: list[Credit]) -> None:
        for credit in credits:
            credit.busy = True
        try:
            self._tasks.spawn(self._refill_some(credits), name="limits-credit")
        except RuntimeError:  # shutting down
            for credit in credits:
                credit.busy = False

    async def _refill_some(self, credits: list[Credit]) -> None:
        rules = [credit.rule for credit in credits]
        try:
            now, tats, got = await self._top_up(rules, [credit.want for credit in credits])
        except Exception:
            return
        finally:
            for credit in credits:
                credit.busy = False
        back: list[tuple[Rule, int]] = []
        for credit, tat, amount in zip(credits, tats, got, strict=True):
            rule = credit.rule
            if self._credits.get(rule.key) is credit:
                self.granted([rule], now, [tat], [amount])
            elif amount > 0:  # returned meanwhile: give this back too
                back.append((rule, amount))
        if back:
            await self._refund([rule for rule, _ in back], [amount for _, amount in back])

    async def _return(self, mono: float) -> None:
        """Give back what is left of each credit past its life (all of them at ``inf``)."""
        rules: list[Rule] = []
        amounts: list[int] = []
        for key, credit in list(self._credits.items()):
            if credit.until <= mono and not credit.busy:
                del self._credits[key]
                self.generation += 1
                if credit.left > 0:
                    rules.append(credit.rule)
                    amounts.append(credit.left)
        if rules:
            try:
                await self._refund(rules, amounts)
            except Exception as exc:  # the cells drain on their own: an over-count, for now
                log.debug("returning rate-limit credit failed: %r", exc)

    async def close(self) -> None:
        await self._sweeper.stop()
        for credit in self._credits.values():
            credit.busy = False
        await self._return(float("inf"))

"""Gateway rate limits per key, user, team and model: GCRA over several limits at once.

Every limit is a GCRA ("generic cell rate algorithm") cell: a limit of L per window W
admits one unit every W/L and holds at most a window's worth, refilled continuously, so
there is no window edge at which two windows' worth pass together. The state of a limit
is one number, its theoretical arrival time (TAT, integer microseconds): the instant
at which the limit is back to its full allowance. A request costing ``n`` units is
admitted when ``max(TAT, now) + n*W/L - now <= W``.

One request is checked against all its limits at once (key RPM and TPM, user, team,
key+model, per day...) and admitted only if every one admits it; a refusal consumes
nothing. Token limits are charged the request's estimate up front and corrected by
``settle`` with the real count. ``LocalRateLimiter`` keeps the cells in this process;
``ratelimit_redis.RedisRateLimiter`` keeps them in Redis with the same arithmetic in Lua.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final, NamedTuple, NoReturn, Protocol
from urllib.parse import quote

from lockgate.core.errors import RateLimitExceeded
from lockgate.core.memo import ByIdentity
from lockgate.features.limit_metrics import LimitMetrics
from lockgate.providers.ratelimits import openai_duration, openai_duration_ms

US = 1_000_000  # microseconds per second
# limit name -> (unit, window in seconds, how OpenAI words the window)
_LIMITS = {
    "rpm": ("requests", 60, "min"),
    "tpm": ("tokens", 60, "min"),
    "rpd": ("requests", 86_400, "day"),
    "tpd": ("tokens", 86_400, "day"),
}


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One scope's limits as stored (None: no such limit). With ``model`` set they count
    only requests for that model (a key+model limit); otherwise every request."""

    scope: str  # key, user, team: a metric label, so a small fixed set
    scope_id: str
    rpm: int | None = None
    tpm: int | None = None
    rpd: int | None = None
    tpd: int | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """One GCRA cell: a limit of ``limit`` units per ``window_us``."""

    key: str  # unique per scope, model and limit name; Redis keys are built from it
    scope: str
    name: str  # rpm, tpm, rpd, tpd
    unit: str  # requests or tokens
    limit: int
    window_us: int
    model: str | None
    requests: bool = field(init=False)  # counts requests (1 a request), not tokens
    request_cost: int = field(init=False)  # cost_us(1): how far one request moves the TAT
    limit_text: str = field(init=False)  # str(limit), for the headers of every request

    def __post_init__(self) -> None:
        object.__setattr__(self, "requests", self.unit == "requests")
        object.__setattr__(self, "request_cost", self.cost_us(1))
        object.__setattr__(self, "limit_text", str(self.limit))

    def cost_us(self, amount: int) -> int:
        """How far ``amount`` units move the TAT (rounded up: never under-charged).

        Ceiling division as ``(a * w + l - 1) // l``, not ``-(-a * w // l)``, here and
        where it is written out: compiled (lockgate/compiled.py), a product takes the fast
        path only when both factors are non-negative and under 2**30; a negated one went
        through Python's ints, some 500 instructions a product, several per request."""
        if self.limit <= 0:
            return self.window_us + 1  # a limit of 0 admits nothing
        return (amount * self.window_us + self.limit - 1) // self.limit

    def describe(self) -> str:
        unit, _, per = _LIMITS[self.name]
        where = f" for model {self.model}" if self.model else ""
        return f"{unit} per {per} ({self.name.upper()}) of this {self.scope}{where}"


class Ticket(NamedTuple):  # a tuple: made once per request, cheaply
    """What an admitted request was charged, for ``settle`` to correct."""

    rules: tuple[Rule, ...]  # the token limits charged
    tokens: int  # the estimate they were charged
    backend: str  # "local" or "redis": where the charge lives
    cells: tuple[Cell, ...] = ()  # "local": the cells of those rules


class Grant(NamedTuple):
    """An admitted request: OpenAI's ``x-ratelimit-*`` headers and the ticket to settle."""

    headers: dict[str, str]
    ticket: Ticket


class RateLimiter(Protocol):
    async def check(
        self, limits: Iterable[RateLimit], *, model: str | None = None, tokens: int = 0
    ) -> Grant:
        """Admit one request costing ``tokens`` (an estimate: prompt + max output) against
        every applicable limit, or raise RateLimitExceeded having consumed nothing."""
        ...

    async def settle(self, ticket: Ticket, tokens: int) -> None:
        """Correct the token limits to the real count (refund or charge the difference)."""
        ...


@lru_cache(maxsize=8192)
def _rules_of(limit: RateLimit) -> tuple[Rule, ...]:
    model = quote(limit.model, safe="") if limit.model else "*"
    base = f"{limit.scope}:{quote(limit.scope_id, safe='')}:{model}"
    rules = []
    for name, (unit, window, _) in _LIMITS.items():
        value: int | None = getattr(limit, name)
        if value is not None:
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
            rules.append(
                Rule(f"{base}:{name}", limit.scope, name, unit, value, window * US, limit.model)
            )
    return tuple(rules)


def select(limits: Iterable[RateLimit], model: str | None) -> list[Rule]:
    """The cells a request for ``model`` counts against (each once)."""
    seen: dict[str, Rule] = {}
    for limit in limits:
        if limit.model is None or limit.model == model:
            for rule in _rules_of(limit):
                seen.setdefault(rule.key, rule)
    return list(seen.values())


class Selected(NamedTuple):
    rules: list[Rule]  # the cells a request counts against
    charged: tuple[Rule, ...]  # those counting tokens, corrected by settle


def _selected(limits: Iterable[RateLimit], model: str | None) -> Selected:
    rules = select(limits, model)
    return Selected(rules, tuple(rule for rule in rules if not rule.requests))


class Selection:
    """``select`` remembered per limits tuple (a principal's tuple lives as long as its
    cache entry), with the token limits among them."""

    def __init__(self) -> None:
        self._seen: ByIdentity[Selected] = ByIdentity()

    def __call__(self, limits: Iterable[RateLimit], model: str | None) -> Selected:
        return self._seen.get(limits, model, _selected)


def corrections(rules: Iterable[Rule], estimate: int, used: int) -> list[int]:
    """Per token limit, µs to charge (+) or refund (-) when a request charged ``estimate``
    tokens used ``used``."""
    # Compiled, cost_us is a direct C call (a limit of 0 costs the same for any amount: 0)
    return [rule.cost_us(used) - rule.cost_us(estimate) for rule in rules]


def amounts(rules: Sequence[Rule], tokens: int) -> list[int]:
    if tokens < 0:
        raise ValueError(f"tokens must be >= 0, got {tokens}")
    return [1 if rule.unit == "requests" else tokens for rule in rules]


def admits(rules: Sequence[Rule], costs: Sequence[int], now: int, tats: Sequence[int]) -> bool:
    """GCRA for every rule; the Lua script in ratelimit_redis.py is this same test."""
    return all(
        max(tat, now) + cost - now <= rule.window_us
        for rule, cost, tat in zip(rules, costs, tats, strict=True)
    )


def decide(
    rules: Sequence[Rule],
    units: Sequence[int],
    now: int,
    tats: Sequence[int],
    allowed: bool,
    backend: str,
    metrics: LimitMetrics | None,
) -> Grant:
    """The grant of an admitted request (``tats`` after charging), or the refusal (``tats``
    as found) raised as RateLimitExceeded for the limit that needs the longest wait."""
    if allowed:
        tokens, charged = 0, []
        for rule, amount in zip(rules, units, strict=True):
            if rule.unit == "tokens":
                tokens = amount
                charged.append(rule)
        return Grant(grant_headers(rules, now, tats), Ticket(tuple(charged), tokens, backend))
    worst: tuple[float, Rule, int, int] | None = None
    for rule, amount, tat in zip(rules, units, tats, strict=True):
        over = max(tat, now) + rule.cost_us(amount) - now - rule.window_us
        if over <= 0:
            continue
        wait = math.inf if amount > rule.limit else over / US
        if worst is None or wait > worst[0]:
            worst = (wait, rule, amount, tat)
    if worst is None:  # the state moved between the test and here: not possible in-process
        raise RuntimeError("refused without a refusing limit")
    wait, rule, amount, tat = worst
    if metrics is not None:
        metrics.limited(rule.scope, rule.name)
    headers = grant_headers([rule], now, [tat])  # the refusing limit's unit shows that limit
    others = [(r, t) for r, t in zip(rules, tats, strict=True) if r.unit != rule.unit]
    headers.update(grant_headers([r for r, _ in others], now, [t for _, t in others]))
    if math.isinf(wait):
        message = (
            f"The limit on {rule.describe()} is 0: nothing is admitted."
            if rule.limit == 0
            else f"Request too large for {rule.describe()}: Limit {rule.limit}, "
            f"Requested {amount}. Ask for fewer tokens (max_tokens) or a higher limit."
        )
        raise RateLimitExceeded(
            message, unit=rule.unit, scope=rule.scope, limit=rule.name, retry_after=None,
            headers=headers,
        )  # fmt: skip
    message = (
        f"Rate limit reached for {rule.describe()}: Limit {rule.limit}, "
        f"Requested {amount}. Please try again in {openai_duration(wait)}."
    )
    raise RateLimitExceeded(
        message, unit=rule.unit, scope=rule.scope, limit=rule.name, retry_after=wait,
        headers=headers,
    )  # fmt: skip


def grant_headers(rules: Sequence[Rule], now: int, tats: Sequence[int]) -> dict[str, str]:
    """OpenAI's headers for limits whose TATs are ``tats`` at ``now``."""
    return headers_of(rules, [tat - now for tat in tats])


def headers_of(rules: Sequence[Rule], waits: Sequence[int]) -> dict[str, str]:
    """OpenAI's headers, per unit for the limit closest to running out (on a tie, the
    smaller limit), for limits whose TATs are ``waits`` µs ahead of now."""
    # Cells, not rules: compiled (lockgate/compiled.py), _headers reads a Cell's fields
    # directly, where a parameter of either type would read them by name.
    return headers_of_cells([Cell(rule) for rule in rules], waits)


def headers_of_cells(cells: Sequence[Cell], waits: Sequence[int]) -> dict[str, str]:
    """``headers_of`` for cells made once for their rules (their TATs are not read)."""
    return _headers(cells, waits, False, 0)


def commit(cells: Sequence[Cell], waits: Sequence[int], now: int) -> dict[str, str]:
    """Set the cells' TATs to ``waits`` (``charge``'s) ahead of ``now`` and return their
    headers, in one pass."""
    return _headers(cells, waits, True, now)


def _headers(cells: Sequence[Cell], waits: Sequence[int], commit: bool, now: int) -> dict[str, str]:
    """``headers_of``, and with ``commit`` ``commit``. Runs for every admitted request,
    hence written out flat: no calls but ``str``, one dict built at once."""
    req: Cell | None = None  # the requests limit closest to running out, its units
    tok: Cell | None = None  # left and how far its TAT is; the same for tokens
    req_left = tok_left = req_wait = tok_wait = 0
    for i, cell in enumerate(cells):
        wait = waits[i]
        if commit:
            cell.tat = now + wait
        limit = cell.limit
        if wait <= 0:
            left = limit
        else:
            window = cell.window_us
            left = (window - wait) * limit // window if wait < window else 0
            if left > limit:
                left = limit
        if cell.requests:
            if req is None or left < req_left or (left == req_left and limit < req.limit):
                req, req_left, req_wait = cell, left, wait
        elif tok is None or left < tok_left or (left == tok_left and limit < tok.limit):
            tok, tok_left, tok_wait = cell, left, wait
    # reset_text, written out: "0s", "1ms" ... "999ms", else openai_duration_ms
    if tok is None:
        if req is None:
            return {}
        ms = -(-req_wait // 1000) if req_wait > 0 else 0
        return {
            "x-ratelimit-limit-requests": req.limit_text,
            "x-ratelimit-remaining-requests": str(req_left),
            "x-ratelimit-reset-requests": _RESETS[ms] if ms < 1000 else openai_duration_ms(ms),
        }
    tok_ms = -(-tok_wait // 1000) if tok_wait > 0 else 0
    tok_reset = _RESETS[tok_ms] if tok_ms < 1000 else openai_duration_ms(tok_ms)
    if req is None:
        return {
            "x-ratelimit-limit-tokens": tok.limit_text,
            "x-ratelimit-remaining-tokens": str(tok_left),
            "x-ratelimit-reset-tokens": tok_reset,
        }
    ms = -(-req_wait // 1000) if req_wait > 0 else 0
    return {
        "x-ratelimit-limit-requests": req.limit_text,
        "x-ratelimit-remaining-requests": str(req_left),
        "x-ratelimit-reset-requests": _RESETS[ms] if ms < 1000 else openai_duration_ms(ms),
        "x-ratelimit-limit-tokens": tok.limit_text,
        "x-ratelimit-remaining-tokens": str(tok_left),
        "x-ratelimit-reset-tokens": tok_reset,
    }


# "0s", "1ms" ... "999ms": a large limit's reset is a few milliseconds away, every request
# (_headers' reset texts; a second or more is openai_duration_ms's).
_RESETS = ("0s", *(f"{ms}ms" for ms in range(1, 1000)))


def charge(cells: Sequence[Cell], tokens: int, now: int) -> list[int] | None:
    """How far each cell's TAT is ahead of ``now`` (µs) after admitting a request of
    ``tokens``, or None when one refuses it (GCRA; nothing is changed). Written out,
    without calls: it runs for every request. Offsets, not TATs: TATs and ``now`` are
    large ints whose arithmetic is slow, their differences small ones."""
    waits: list[int] = []
    for cell in cells:
        wait = cell.tat - now
        if wait < 0:
            wait = 0
        window = cell.window_us
        if cell.requests:
            wait += cell.request_cost
        else:  # Rule.cost_us(tokens), written out
            limit = cell.limit
            wait += (tokens * window + limit - 1) // limit if limit > 0 else window + 1
        if wait > window:
            return None
        waits.append(wait)
    return waits


class Cell:
    """One GCRA cell of this process: its TAT and its rule's figures, in one object, so
    that a check touches one object per limit."""

    __slots__ = ("limit", "limit_text", "live", "request_cost", "requests", "rule", "tat",
                 "unit", "window_us")  # fmt: skip

    def __init__(self, rule: Rule) -> None:
        self.tat = 0  # at its full allowance
        self.live = True  # False once swept: a ticket holding it finds the new one by key
        self.take(rule)

    def take(self, rule: Rule) -> None:
        """Count by ``rule``'s figures (a changed limit applies at once, on the same TAT)."""
        self.rule = rule
        self.unit, self.limit = rule.unit, rule.limit
        self.window_us, self.limit_text = rule.window_us, rule.limit_text
        self.requests, self.request_cost = rule.requests, rule.request_cost


class CellPlan(NamedTuple):
    """The cells one request counts against (a principal's limits for one model)."""

    cells: tuple[Cell, ...]
    rules: tuple[Rule, ...]
    charged: tuple[Cell, ...]  # the token limits, corrected by settle
    charged_rules: tuple[Rule, ...]


class LocalRateLimiter:
    """The cells in this process's memory: exact for one replica, per replica for many."""

    __slots__ = ("_cells", "_checks", "_metrics", "_plan_of", "_plans", "clock", "generation")
    _SWEEP_EVERY: Final = 4096  # checks between drops of cells back at their full allowance

    def __init__(
        self,
        *,
        metrics: LimitMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cells: dict[str, Cell] = {}
        self._plans: ByIdentity[CellPlan] = ByIdentity()  # per principal's limits and model
        self._plan_of = self._selected  # bound once, not per request
        self._metrics = metrics
        self.clock = clock
        self._checks = 0
        self.generation = 0  # sweeps so far: plans taken before the last one are stale

    async def check(
        self, limits: Iterable[RateLimit], *, model: str | None = None, tokens: int = 0
    ) -> Grant:
        return self.check_limits(limits, model, tokens)

    def check_limits(self, limits: Iterable[RateLimit], model: str | None, tokens: int) -> Grant:
        """``check`` without suspending: in-process cells answer at once."""
        return self._check(self._plans.get(limits, model, self._plan_of), tokens)

    def check_now(self, rules: Sequence[Rule], tokens: int) -> Grant:
        """Check ``rules`` (Redis's fail-open path: no plan is kept)."""
        return self._check(self._plan(rules), tokens)

    def _selected(self, limits: Iterable[RateLimit], model: str | None) -> CellPlan:
        return self._plan(select(limits, model))

    def _plan(self, rules: Sequence[Rule]) -> CellPlan:
        cells = tuple(self._cell(rule) for rule in rules)
        charged = tuple(cell for cell in cells if not cell.requests)
        return CellPlan(cells, tuple(rules), charged, tuple(cell.rule for cell in charged))

    def _cell(self, rule: Rule) -> Cell:
        cell = self._cells.get(rule.key)
        if cell is None:
            cell = self._cells[rule.key] = Cell(rule)
        elif cell.rule != rule:  # the limit was changed since the cell was made
            cell.take(rule)
        return cell

    def _check(self, plan: CellPlan, tokens: int) -> Grant:
        if tokens < 0:
            raise ValueError(f"tokens must be >= 0, got {tokens}")
        now = int(self.clock() * US)
        self._checks += 1
        if self._checks % self._SWEEP_EVERY == 0:
            self.sweep(now)
            plan = self._plan(plan.rules)  # its cells may have been swept
        waits = charge(plan.cells, tokens, now)
        if waits is None:
            self.refuse(plan, tokens, now)
        headers = commit(plan.cells, waits, now)
        return Grant(headers, Ticket(plan.charged_rules, tokens, "local", plan.charged))

    def sweep(self, now: int) -> None:
        """Drop the cells back at their full allowance (and the plans holding them): a
        holder of a plan checks ``generation`` and asks for a new one when it moved."""
        for key, cell in list(self._cells.items()):
            if cell.tat <= now:
                cell.live = False
                del self._cells[key]
        self._plans.clear()
        self.generation += 1

    def plan_for(self, limits: Iterable[RateLimit], model: str | None) -> CellPlan:
        """The cells a request for ``model`` counts against, valid until ``generation``
        moves."""
        return self._plans.get(limits, model, self._plan_of)

    def refuse(self, plan: CellPlan, tokens: int, now: int) -> NoReturn:
        """Raise RateLimitExceeded for the state as found (nothing was charged)."""
        rules = plan.rules
        tats = [max(cell.tat, now) for cell in plan.cells]
        decide(rules, amounts(rules, tokens), now, tats, False, "local", self._metrics)
        raise RuntimeError("refused without a refusing limit")  # decide raised

    async def settle(self, ticket: Ticket, tokens: int) -> None:
        self.settle_now(ticket, tokens)

    def settle_now(self, ticket: Ticket, tokens: int) -> None:
        if tokens < 0:
            raise ValueError(f"tokens must be >= 0, got {tokens}")
        if tokens == ticket.tokens or not ticket.rules:
            return
        # A ticket of another engine (Redis away) names its rules; a local one its cells.
        cells = ticket.cells or tuple(self._cell(rule) for rule in ticket.rules)
        self.correct(cells, ticket.tokens, tokens)

    def correct(self, cells: Iterable[Cell], estimate: int, tokens: int) -> None:
        """Move token cells charged ``estimate`` to the real count ``tokens``: a refund
        comes off the TAT, an extra charge goes on from now."""
        now = 0  # read when first needed: a large limit's correction is often 0 µs
        for cell in cells:
            limit = cell.limit
            if limit <= 0:  # Rule.cost_us is the same for any amount: nothing to correct
                continue
            # Rule.cost_us(tokens) - Rule.cost_us(estimate), written out (every request)
            window = cell.window_us
            extra = limit - 1
            delta = (tokens * window + extra) // limit - (estimate * window + extra) // limit
            if delta == 0:
                continue
            if not cell.live:  # swept while the request was in flight: its replacement
                cell = self._cell(cell.rule)
            if delta < 0:
                cell.tat += delta
                continue
            if not now:
                now = int(self.clock() * US)
            tat = cell.tat
            cell.tat = (tat if tat > now else now) + delta

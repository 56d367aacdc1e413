"""Rate limits shared by every replica: the GCRA cells in Redis, checked by one Lua script.

One script call tests and charges all of a request's limits atomically, so N replicas
enforce one limit, not N, and a refusal by any limit consumes nothing from the others.
Concurrent requests' calls travel together (storage/redis_batch.py), each still atomic.
Every key carries the ``{lg-rl}`` hash tag: on a Redis Cluster (or a proxy in front of one)
all cells sit in one slot, where a multi-key script is allowed. While Redis does not answer,
the same arithmetic runs in process (see features/failopen.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from lockgate.core.tasks import TaskTracker
from lockgate.features.failopen import FailOpen, RedisUnavailable
from lockgate.features.limit_credits import LimitCredits
from lockgate.features.limit_metrics import LimitMetrics
from lockgate.features.ratelimit import (
    US,
    Grant,
    LocalRateLimiter,
    RateLimit,
    Rule,
    Selection,
    Ticket,
    amounts,
    corrections,
    decide,
    headers_of,
)
from lockgate.storage.redis import SharedRedis
from lockgate.storage.redis_batch import SETTLE_LINGER, ScriptBatch

# KEYS: one cell per limit. ARGV[1]: now in microseconds, or "" for the Redis server's
# clock (one clock for every replica); then per cell: its cost in microseconds, its window,
# the credit wanted in microseconds (limit_credits.py; 0: none). Credit is charged on top
# of an admitted cost only while the cell stays at most half full.
# Returns {admitted, now, tat_1 .. tat_n, credit_1 .. credit_n}: the TATs after charging,
# or as found if refused, and the credit charged per cell.
# Numbers are formatted with %.0f: Lua's tostring keeps only 14 digits.
CHECK_LUA = """
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
local n = #KEYS
local tats = {}
local ok = 1
for i = 1, n do
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  tats[i] = tat
  if tat + tonumber(ARGV[3 * i - 1]) - now > tonumber(ARGV[3 * i]) then ok = 0 end
end
local out = {ok, string.format('%.0f', now)}
for i = 1, n do
  local tat = tats[i]
  local credit = 0
  if ok == 1 then
    tat = tat + tonumber(ARGV[3 * i - 1])
    credit = tonumber(ARGV[3 * i + 1])
    if credit > 0 then
      local room = math.floor(tonumber(ARGV[3 * i]) / 2) - (tat - now)
      if room < credit then credit = room end
      if credit < 0 then credit = 0 end
      tat = tat + credit
    end
    if tat > now then
      redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000))
    end
  end
  out[i + 2] = string.format('%.0f', tat)
  out[n + i + 2] = string.format('%.0f', credit)
end
return out
"""

# KEYS: the token cells of an admitted request. ARGV[1]: now as above; then per cell the
# correction in microseconds: positive charges more (from now on if the cell is idle),
# negative refunds (a cell back below now is at its full allowance and is deleted).
SETTLE_LUA = """
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
for i = 1, #KEYS do
  local delta = tonumber(ARGV[i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if delta > 0 then
    if tat < now then tat = now end
    tat = tat + delta
  else
    tat = tat + delta
  end
  if tat > now then
    redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000))
  else
    redis.call('DEL', KEYS[i])
  end
end
return 1
"""


class RedisRateLimiter:
    """Limits shared through Redis, failing open to ``local`` while Redis is away.

    ``clock`` (seconds) is for tests; by default the script reads the Redis server's clock,
    so that replicas whose clocks disagree still agree on every limit."""

    def __init__(
        self,
        redis: SharedRedis,
        *,
        tasks: TaskTracker,
        metrics: LimitMetrics | None = None,
        clock: Callable[[], float] | None = None,
        probe_interval: float = 1.0,
        credit: bool = True,
    ) -> None:
        self._redis = redis
        self._clock = clock
        self._metrics = metrics
        self.local = LocalRateLimiter(metrics=metrics, **({"clock": clock} if clock else {}))
        self.failopen = FailOpen("rate_limits", redis, metrics, probe_interval=probe_interval)
        self.select = Selection()  # the cells a request counts against, remembered
        self.credits = LimitCredits(self._top_up, self._refund, tasks, enabled=credit)
        if metrics is not None:
            metrics.holdings["rate_limits"] = self.credits.__len__
        run = self.failopen.run
        self._check = ScriptBatch(redis.client, CHECK_LUA, tasks, name="limits-check", run=run)
        self._settle = ScriptBatch(
            redis.client, SETTLE_LUA, tasks, name="limits-settle", run=run, linger=SETTLE_LINGER
        )

    def _now_arg(self) -> str:
        return "" if self._clock is None else str(int(self._clock() * US))

    def _keys(self, rules: Sequence[Rule]) -> list[str]:
        return [self._redis.key("{lg-rl}", rule.key) for rule in rules]

    def try_check(
        self, limits: Iterable[RateLimit], model: str | None, tokens: int
    ) -> Grant | None:
        """``check`` without waiting, from this replica's credit (limit_credits.py), or None."""
        if tokens < 0:
            raise ValueError(f"tokens must be >= 0, got {tokens}")
        rules, charged = self.select(limits, model)
        if not rules:
            return Grant({}, Ticket((), 0, "local"))
        if not self.credits or self.failopen.down:  # its probes are the per-request path's
            return None
        costs = [rule.request_cost if rule.requests else rule.cost_us(tokens) for rule in rules]
        waits = self.credits.take(rules, costs)
        if waits is None:
            return None
        return Grant(headers_of(rules, waits), Ticket(charged, tokens, "credit"))

    async def check(
        self, limits: Iterable[RateLimit], *, model: str | None = None, tokens: int = 0
    ) -> Grant:
        granted = self.try_check(limits, model, tokens)
        if granted is not None:
            return granted
        rules = self.select(limits, model).rules
        if self.failopen.available():
            units = amounts(rules, tokens)
            costs = [rule.cost_us(amount) for rule, amount in zip(rules, units, strict=True)]
            wants = self.credits.wants(rules, costs)
            args: list[str | int] = [self._now_arg()]
            for rule, cost, want in zip(rules, costs, wants, strict=True):
                args += (cost, rule.window_us, want)
            try:
                reply = await self._check(self._keys(rules), args)
            except RedisUnavailable:
                pass
            else:
                allowed, now, *rest = (int(value) for value in reply)
                tats, got = rest[: len(rules)], rest[len(rules) :]
                if allowed == 1 and any(got):
                    self.credits.granted(rules, now, tats, got)
                return decide(rules, units, now, tats, allowed == 1, "redis", self._metrics)
        return self.local.check_now(rules, tokens)

    async def _top_up(
        self, rules: Sequence[Rule], wants: Sequence[int]
    ) -> tuple[int, list[int], list[int]]:
        if self.failopen.down:
            raise RedisUnavailable("rate_limits")
        args: list[str | int] = [self._now_arg()]
        for rule, want in zip(rules, wants, strict=True):
            args += (0, rule.window_us, want)
        _allowed, now, *rest = (int(v) for v in await self._check(self._keys(rules), args))
        return now, rest[: len(rules)], rest[len(rules) :]

    async def _refund(self, rules: Sequence[Rule], amounts_us: Sequence[int]) -> None:
        if not self.failopen.down:
            args: list[str | int] = [self._now_arg(), *(-amount for amount in amounts_us)]
            await self._settle(self._keys(rules), args)

    async def close(self) -> None:
        """Give back this replica's unused credit."""
        await self.credits.close()

    def try_settle(self, ticket: Ticket, tokens: int) -> bool:
        """``settle`` without waiting: True when nothing is left to send to Redis."""
        if not ticket.rules or tokens == ticket.tokens:
            return True
        if ticket.backend != "credit":
            return False
        deltas = corrections(ticket.rules, ticket.tokens, tokens)
        return self.credits.adjust(ticket.rules, deltas)

    async def settle(self, ticket: Ticket, tokens: int) -> None:
        if tokens < 0:
            raise ValueError(f"tokens must be >= 0, got {tokens}")
        if not ticket.rules or tokens == ticket.tokens:
            return
        if ticket.backend == "local":
            self.local.settle_now(ticket, tokens)
            return
        rules = ticket.rules
        deltas = corrections(rules, ticket.tokens, tokens)
        if ticket.backend == "credit":  # corrected in the credit where there is one
            kept = [self.credits.adjust((r,), (d,)) for r, d in zip(rules, deltas, strict=True)]
            rules = tuple(r for r, k in zip(rules, kept, strict=True) if not k)
            deltas = [d for d, k in zip(deltas, kept, strict=True) if not k]
            if not rules:
                return
        if self.failopen.available():
            args: list[str | int] = [self._now_arg(), *deltas]
            try:
                await self._settle(self._keys(rules), args)
                return
            except RedisUnavailable:
                pass
        # Redis is away: a refund is lost (the estimate stays charged there, an over-count),
        # and tokens beyond the estimate go to the in-process cells enforcing meanwhile.
        if tokens > ticket.tokens:
            self.local.settle_now(ticket, tokens)

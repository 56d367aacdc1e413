"""Budgets shared by every replica: counters in Redis, reserved and settled by Lua scripts.

Per scope and period one hash holds ``spent``, ``reserved``, each reservation's amount
(``r:<id>``) and the soft alerts already fired (``a:<threshold>``); a sorted set holds
reservation expiries, so an unsettled reservation is released by the next call after it
expires. One script reserves on all of a request's budgets atomically; concurrent
requests' calls travel together (storage/redis_batch.py), each still atomic. Keys carry the
``{lg-bg}`` hash tag (one cluster slot) and expire a day after their period ends.
While Redis does not answer, an in-process ``LocalBudgets`` enforces instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from lockgate.core.tasks import TaskTracker
from lockgate.features.budget_leases import LEASE_SHARE, LEASE_TTL, BudgetLeases
from lockgate.features.budgets import (
    DEFAULT_RESERVATION_TTL,
    Budget,
    BudgetAlert,
    Hold,
    LocalBudgets,
    Plans,
    Reservation,
    alerted,
    new_id,
    plan,
    refusal,
)
from lockgate.features.failopen import FailOpen, RedisUnavailable
from lockgate.features.limit_metrics import LimitMetrics
from lockgate.storage.redis import SharedRedis
from lockgate.storage.redis_batch import SETTLE_LINGER, ScriptBatch

# Releases a scope's expired reservations (``purge``) or one (``release``); fires crossed
# alerts once per period (``alerts``). Amounts are added as strings ('-' .. held): Lua
# would print a large number in exponent form, which HINCRBY refuses.
_PURGE = """
local function purge(h, z, now)
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  for _, id in ipairs(gone) do
    local held = redis.call('HGET', h, 'r:' .. id)
    if held then
      redis.call('HINCRBY', h, 'reserved', '-' .. held)
      redis.call('HDEL', h, 'r:' .. id)
    end
  end
  if #gone > 0 then redis.call('ZREMRANGEBYSCORE', z, '-inf', now) end
end
local function keep(h, z, ttl)
  if ttl > 0 then
    redis.call('PEXPIRE', h, ttl)
    redis.call('PEXPIRE', z, ttl)
  end
end
local function release(h, z, id)
  local held = redis.call('HGET', h, 'r:' .. id)
  if held then
    redis.call('HINCRBY', h, 'reserved', '-' .. held)
    redis.call('HDEL', h, 'r:' .. id)
    redis.call('ZREM', z, id)
  end
end
local function alerts(h, i, spent, thresholds, fired)
  for label, amount in string.gmatch(thresholds, '([^=,]+)=(%d+)') do
    if spent >= tonumber(amount) and redis.call('HSETNX', h, 'a:' .. label, '1') == 1 then
      fired[#fired + 1] = tostring(i)
      fired[#fired + 1] = label
    end
  end
end
"""

# KEYS: hash, zset per budget. ARGV: now (ms), reservation id, amount, its expiry (ms);
# then per budget: limit, ledger floor (-1: none), key TTL in ms (0: none).
# Returns {1} when held everywhere, or {0, index, spent, reserved} of the refusing budget.
RESERVE_LUA = (
    _PURGE
    + """
local now = ARGV[1]
local amount = tonumber(ARGV[3])
local n = #KEYS / 2
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  purge(h, z, now)
  local limit = tonumber(ARGV[3 * i + 2])
  local floor = tonumber(ARGV[3 * i + 3])
  local spent = tonumber(redis.call('HGET', h, 'spent') or '0')
  if floor > spent then
    redis.call('HSET', h, 'spent', ARGV[3 * i + 3])
    spent = floor
  end
  local reserved = tonumber(redis.call('HGET', h, 'reserved') or '0')
  if spent >= limit or spent + reserved + amount > limit then
    return {0, i, string.format('%.0f', spent), string.format('%.0f', reserved)}
  end
end
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  redis.call('HINCRBY', h, 'reserved', ARGV[3])
  redis.call('HSET', h, 'r:' .. ARGV[2], ARGV[3])
  redis.call('ZADD', z, ARGV[4], ARGV[2])
  keep(h, z, tonumber(ARGV[3 * i + 4]))
end
return {1}
"""
)

# KEYS as above. ARGV: now (ms), reservation id, cost; then per budget: key TTL in ms and
# its alert thresholds as "label=amount,label=amount". Releases the reservation (if it has
# not expired), adds the cost, and fires each crossed alert once per period (HSETNX).
# Returns each budget's spend, then (budget index, threshold label) of every alert fired.
SETTLE_LUA = (
    _PURGE
    + """
local now = ARGV[1]
local rid = ARGV[2]
local n = #KEYS / 2
local out = {}
local fired = {}
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  purge(h, z, now)
  release(h, z, rid)
  local spent = redis.call('HINCRBY', h, 'spent', ARGV[3])
  keep(h, z, tonumber(ARGV[2 * i + 2]))
  out[i] = string.format('%.0f', spent)
  alerts(h, i, spent, ARGV[2 * i + 3], fired)
end
for _, v in ipairs(fired) do out[#out + 1] = v end
return out
"""
)


# KEYS as above. ARGV: now (ms), lease id, spend settled on the lease since its last call,
# the amount the lease keeps reserved (its requests in flight), the top-up wanted, the
# lease's expiry (ms); then per budget: limit, ledger floor, key TTL in ms, alert
# thresholds. Adds the spend, re-reserves what is kept plus what is granted of the top-up
# (at most 1/LEASE_SHARE of what each budget has free), fires crossed alerts.
# Returns the top-up granted, each budget's spend, then (index, label) of each alert fired.
LEASE_LUA = (
    _PURGE
    + """
local now, id = ARGV[1], ARGV[2]
local base = tonumber(ARGV[4])
local grant = tonumber(ARGV[5])
local n = #KEYS / 2
local spent = {}
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  purge(h, z, now)
  release(h, z, id)
  local s = tonumber(redis.call('HINCRBY', h, 'spent', ARGV[3]))
  local floor = tonumber(ARGV[4 * i + 4])
  if floor > s then
    redis.call('HSET', h, 'spent', ARGV[4 * i + 4])
    s = floor
  end
  spent[i] = s
  local reserved = tonumber(redis.call('HGET', h, 'reserved') or '0')
  local cap = math.floor((tonumber(ARGV[4 * i + 3]) - s - reserved - base) / """
    + str(LEASE_SHARE)
    + """)
  if cap < grant then grant = cap end
end
if grant < 0 then grant = 0 end
local total = string.format('%.0f', base + grant)
local out = {string.format('%.0f', grant)}
local fired = {}
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  if base + grant > 0 then
    redis.call('HINCRBY', h, 'reserved', total)
    redis.call('HSET', h, 'r:' .. id, total)
    redis.call('ZADD', z, ARGV[6], id)
  end
  keep(h, z, tonumber(ARGV[4 * i + 5]))
  out[i + 1] = string.format('%.0f', spent[i])
  alerts(h, i, spent[i], ARGV[4 * i + 6], fired)
end
for _, v in ipairs(fired) do out[#out + 1] = v end
return out
"""
)


class RedisBudgets:
    """Budgets shared through Redis, failing open to ``local`` while Redis is away."""

    def __init__(
        self,
        redis: SharedRedis,
        *,
        tasks: TaskTracker,
        metrics: LimitMetrics | None = None,
        clock: Callable[[], float] = time.time,
        reservation_ttl: float = DEFAULT_RESERVATION_TTL,
        probe_interval: float = 1.0,
        leases: bool = True,
    ) -> None:
        self._redis = redis
        self._metrics = metrics
        self.clock = clock
        self.reservation_ttl = reservation_ttl
        self.local = LocalBudgets(metrics=metrics, clock=clock, reservation_ttl=reservation_ttl)
        self.failopen = FailOpen("budgets", redis, metrics, probe_interval=probe_interval)
        run = self.failopen.run
        self._reserve = ScriptBatch(redis.client, RESERVE_LUA, tasks, name="budgets", run=run)
        self._settle = ScriptBatch(
            redis.client, SETTLE_LUA, tasks, name="budgets-settle", run=run, linger=SETTLE_LINGER
        )
        self._lease = ScriptBatch(redis.client, LEASE_LUA, tasks, name="budgets-lease", run=run)
        self._plans = Plans()
        self.leases = BudgetLeases(
            self._flush_lease,
            tasks,
            lambda hold, label, spent: alerted(hold, label, spent, metrics),
            enabled=leases,
        )
        if metrics is not None:
            metrics.holdings["budgets"] = self.leases.__len__

    def _keys(self, holds: Sequence[Hold]) -> list[str]:
        keys: list[str] = []
        for hold in holds:
            hash_key = self._redis.key("{lg-bg}", hold.key)
            keys += (hash_key, hash_key + ":res")
        return keys

    @staticmethod
    def _ttl_ms(hold: Hold, now: float) -> int:
        until = hold.keep_until()
        return 0 if until is None else max(1, round((until - now) * 1000))

    def holds(self, budgets: Iterable[Budget], now: float) -> list[Hold]:
        """The counters ``budgets`` reserve on at ``now`` (epoch seconds), remembered."""
        return self._plans(budgets, now)

    def try_reserve(self, budgets: Iterable[Budget], max_cost: int) -> Reservation | None:
        """``reserve`` without waiting, on this replica's lease of the budgets, or None
        (budget_leases.py)."""
        if max_cost < 0:
            raise ValueError(f"max_cost must be >= 0, got {max_cost}")
        holds = self._plans(budgets, self.clock())
        if not holds:
            return Reservation(new_id(), max_cost, (), "local")
        if self.failopen.down:  # its probes are the per-request path's
            return None
        return self.leases.take(holds, max_cost)

    async def reserve(self, budgets: Iterable[Budget], max_cost: int) -> Reservation:
        leased = self.try_reserve(budgets, max_cost)
        if leased is not None:
            return leased
        now = self.clock()
        holds = self._plans(budgets, now)
        if self.failopen.available():
            rid = new_id()
            args: list[str | int] = [
                round(now * 1000), rid, max_cost, round((now + self.reservation_ttl) * 1000)
            ]  # fmt: skip
            for hold in holds:
                args += (hold.budget.limit, hold.floor, self._ttl_ms(hold, now))
            try:
                reply = await self._reserve(self._keys(holds), args)
            except RedisUnavailable:
                pass
            else:
                if int(reply[0]) == 1:
                    return Reservation(rid, max_cost, tuple(holds), "redis")
                _, index, spent, reserved = (int(v) for v in reply)
                raise refusal(holds[index - 1], spent, reserved, max_cost, self._metrics)
        return self.local.reserve_now(holds, max_cost)

    def try_settle(self, reservation: Reservation, cost: int) -> bool:
        """``settle`` without waiting, for a reservation made on a lease."""
        return (
            reservation.backend == "lease" and cost >= 0 and self.leases.settle(reservation, cost)
        )

    async def settle(self, reservation: Reservation, cost: int) -> list[BudgetAlert]:
        if cost < 0:
            raise ValueError(f"cost must be >= 0, got {cost}")
        if reservation.backend == "lease" and self.leases.settle(reservation, cost):
            return []  # sent with the lease's next flush, where its alerts fire
        if reservation.backend == "local" or not reservation.holds:
            return self.local.settle_now(reservation, cost)
        now = self.clock()
        if self.failopen.available():
            args: list[str | int] = [round(now * 1000), reservation.id, cost]
            for hold in reservation.holds:
                thresholds = ",".join(f"{t}={a}" for t, a in hold.alerts)
                args += (self._ttl_ms(hold, now), thresholds)
            try:
                reply = await self._settle(self._keys(reservation.holds), args)
            except RedisUnavailable:
                pass
            else:
                return self._alerts(reservation.holds, [_text(v) for v in reply])
        # Redis is away: the reservation there expires on its own, and the cost is counted
        # by the in-process budgets enforcing meanwhile; the ledger's ``spent`` (Budget)
        # brings the shared counters up to date when Redis is back.
        return self.local.settle_now(reservation, cost)

    async def _flush_lease(
        self, holds: Sequence[Hold], lease_id: str, spend: int, keep: int, want: int, now: float
    ) -> tuple[int, list[int], list[tuple[int, str]]]:
        if self.failopen.down:
            raise RedisUnavailable("budgets")
        expiry = round((now + LEASE_TTL) * 1000)
        args: list[str | int] = [round(now * 1000), lease_id, spend, keep, want, expiry]
        for hold in holds:
            thresholds = ",".join(f"{t}={a}" for t, a in hold.alerts)
            args += (hold.budget.limit, hold.floor, self._ttl_ms(hold, now), thresholds)
        reply = [_text(v) for v in await self._lease(self._keys(holds), args)]
        n = len(holds)
        fired = reply[n + 1 :]
        alerts = [(int(i) - 1, label) for i, label in zip(fired[::2], fired[1::2], strict=True)]
        return int(reply[0]), [int(v) for v in reply[1 : n + 1]], alerts

    async def close(self) -> None:
        """Send the spend settled on leases and give them back."""
        await self.leases.close()

    def _alerts(self, holds: Sequence[Hold], reply: list[str]) -> list[BudgetAlert]:
        spent = [int(v) for v in reply[: len(holds)]]
        fired = reply[len(holds) :]
        alerts = []
        for index, label in zip(fired[::2], fired[1::2], strict=True):
            i = int(index) - 1
            alerts.append(alerted(holds[i], label, spent[i], self._metrics))
        return alerts

    async def usage(self, budget: Budget) -> tuple[int, int]:
        """(spent, reserved) of ``budget`` in the current period, as Redis has them."""
        hold = plan([budget], self.clock())[0]
        spent, reserved = await self._redis.client.hmget(
            self._keys([hold])[0], ["spent", "reserved"]
        )
        return int(spent or 0), int(reserved or 0)


def _text(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

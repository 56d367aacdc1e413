"""Cooldowns shared by replicas: a circuit one replica opens keeps every replica away, and
when the cooldown ends one replica, the holder of a probe lease, sends the probe.

Per deployment, Redis holds `cooldown:<id>` (TTL = the time left; value = the cooldown
length, so a failed probe's doubling is shared too) and `probe:<id>` (the lease: SET NX
with a TTL of `redis.probe_lease`). Opens and closes are published on the events channel;
the keys let a replica that missed a message catch up at its next sync. Nothing here runs
on a request's path: a request only reads its replica's breaker.
"""

from __future__ import annotations

import time

import orjson
from redis.typing import EncodableT

from lockgate.core.cooldown import OPEN, Breaker
from lockgate.features.shared_state import SharedLink

# Extend (never shorten) the shared cooldown; give back our probe lease (a failed probe).
_OPEN = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1])
end
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return redis.call('PUBLISH', ARGV[4], ARGV[5])
"""
_CLOSED = """
redis.call('DEL', KEYS[1], KEYS[2])
return redis.call('PUBLISH', ARGV[1], ARGV[2])
"""


class _Peer:
    """What one deployment's breaker tells the other replicas."""

    def __init__(self, sync: CircuitSync, breaker: Breaker) -> None:
        self._sync = sync
        self._breaker = breaker

    def opened(self, seconds: float, cooldown: float) -> None:
        self._sync.opened(self._breaker, seconds, cooldown)

    def closed(self) -> None:
        self._sync.closed(self._breaker)


class CircuitSync:
    def __init__(self, link: SharedLink, breakers: list[Breaker], lease: float) -> None:
        self._link = link
        self._breakers = {b.deployment: b for b in breakers}
        self._lease = lease
        self._due: dict[str, float] = {}  # deployment -> when to ask for the probe lease
        self._open_script = link.client.register_script(_OPEN)
        self._closed_script = link.client.register_script(_CLOSED)
        for breaker in breakers:
            breaker.peer = _Peer(self, breaker)
        link.on("open", self._on_open)
        link.on("closed", self._on_closed)
        link.join(self)

    def _keys(self, deployment: str) -> list[str]:
        return [
            self._link.redis.key("cooldown", deployment),
            self._link.redis.key("probe", deployment),
        ]

    # -- this replica's news ------------------------------------------------------------------

    def opened(self, breaker: Breaker, seconds: float, cooldown: float) -> None:
        link = self._link
        if not link.up:
            return  # alone: the breaker probes on its own when the cooldown ends
        self._await_lease(breaker, seconds)
        message = orjson.dumps(
            {"k": "open", "from": link.replica, "dep": breaker.deployment, "s": seconds,
             "cd": cooldown}
        )  # fmt: skip
        args: list[EncodableT] = [
            max(int(seconds * 1000), 1),
            cooldown,
            link.replica,
            link.events_channel,
            message,
        ]
        keys = self._keys(breaker.deployment)
        link.send("open", lambda _: self._open_script(keys=keys, args=args))

    def closed(self, breaker: Breaker) -> None:
        link = self._link
        self._due.pop(breaker.deployment, None)
        if not link.up:
            return
        message = orjson.dumps({"k": "closed", "from": link.replica, "dep": breaker.deployment})
        keys = self._keys(breaker.deployment)
        args: list[EncodableT] = [link.events_channel, message]
        link.send("closed", lambda _: self._closed_script(keys=keys, args=args))

    # -- other replicas' news -----------------------------------------------------------------

    def _on_open(self, event: dict[str, object]) -> None:
        breaker = self._breakers.get(str(event["dep"]))
        if breaker is None:
            return
        seconds = float(event["s"])  # type: ignore[arg-type]
        breaker.adopt_open(seconds, float(event["cd"]))  # type: ignore[arg-type]
        self._await_lease(breaker, seconds)

    def _on_closed(self, event: dict[str, object]) -> None:
        breaker = self._breakers.get(str(event["dep"]))
        if breaker is not None:
            self._due.pop(breaker.deployment, None)
            breaker.adopt_closed()

    def _await_lease(self, breaker: Breaker, seconds: float) -> None:
        """No probe until this replica holds the lease: asked for when the cooldown ends;
        should that never happen, the hold runs out a lease later and it probes alone."""
        breaker.hold_probe(seconds + self._lease)
        self._due[breaker.deployment] = time.monotonic() + seconds

    # -- the sync loop's work -----------------------------------------------------------------

    def next_due(self) -> float | None:
        return min(self._due.values(), default=None)

    async def run_due(self, link: SharedLink, now: float) -> None:
        for deployment, at in list(self._due.items()):
            if at > now:
                continue
            del self._due[deployment]
            breaker = self._breakers[deployment]
            if breaker.state != OPEN:
                continue
            await self._ask_lease(link, breaker)

    async def _ask_lease(self, link: SharedLink, breaker: Breaker) -> None:
        lease = self._keys(breaker.deployment)[1]
        try:
            won = await link.call(
                "probe_lease",
                link.client.set(lease, link.replica, nx=True, px=int(self._lease * 1000)),
            )
            left = 0 if won else await link.call("probe_lease", link.client.pttl(lease))
        except Exception:
            breaker.allow_probe()  # fail open: probe as a lone replica would
            return
        if won:
            breaker.allow_probe()
        elif left > 0:
            breaker.hold_probe(left / 1000 + 0.01)
            self._due[breaker.deployment] = time.monotonic() + left / 1000
        else:
            self._due[breaker.deployment] = time.monotonic()  # the lease just went: ask again

    async def sync(self, link: SharedLink) -> None:
        """Adopt cooldowns this replica has not heard of (a missed message, a restart)."""
        pipe = link.client.pipeline(transaction=False)
        deployments = list(self._breakers)
        for deployment in deployments:
            key = self._keys(deployment)[0]
            pipe.pttl(key)
            pipe.get(key)
        replies = await link.call("sync_cooldowns", pipe.execute())
        for i, deployment in enumerate(deployments):
            left, cooldown = replies[2 * i], replies[2 * i + 1]
            if left <= 0 or cooldown is None:
                continue
            breaker = self._breakers[deployment]
            seconds = left / 1000
            if breaker.state == OPEN and breaker.retry_in() + 0.05 >= seconds:
                continue  # already knows
            breaker.adopt_open(seconds, float(cooldown))
            self._await_lease(breaker, seconds)

    def on_down(self) -> None:
        self._due.clear()
        for breaker in self._breakers.values():
            breaker.allow_probe()

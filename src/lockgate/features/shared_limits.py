"""Upstream capacity shared by replicas: each live replica takes an equal share (1/N) of a
deployment's rate limits and concurrency, and what one replica learns about them (the
limits a provider advertises, a 429's pause and rate cut) every replica adopts.

Replicas count themselves with a heartbeat: a sorted set `replicas` scored by Redis's own
clock (no skew between hosts), pruned of members silent for three sync intervals. The
learned limits live in `limits:<deployment>:<kind>` for replicas that start later; pauses
only travel as messages, being short. Requests never wait on Redis: admission reads its
local buckets, which these updates resize.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import orjson
from prometheus_client.core import GaugeMetricFamily, Metric
from redis.asyncio import Redis

from lockgate.core.admission import Admission
from lockgate.features.shared_state import SharedLink

_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('ZCARD', KEYS[1])
"""
KINDS = ("requests", "tokens")
LIMITS_TTL = 24 * 3600  # seconds a learned limit is kept for replicas that start later


class _Peer:
    def __init__(self, sync: CapacitySync, deployment: str) -> None:
        self._sync = sync
        self._deployment = deployment

    def learned(self, kind: str, limit: float, capacity: float) -> None:
        self._sync.learned(self._deployment, kind, limit, capacity)

    def paused(self, seconds: float, factor: float) -> None:
        self._sync.paused(self._deployment, seconds, factor)


class CapacitySync:
    def __init__(self, link: SharedLink, admissions: dict[str, Admission]) -> None:
        self._link = link
        self._admissions = admissions
        self.replicas = 1
        self._heartbeat = link.client.register_script(_HEARTBEAT)
        self._paused_until: dict[str, float] = {}  # what this replica last told the others
        for deployment, admission in admissions.items():
            admission.peer = _Peer(self, deployment)
        link.on("limits", self._on_limits)
        link.on("paused", self._on_paused)
        link.join(self)

    # -- this replica's news ------------------------------------------------------------------

    def learned(self, deployment: str, kind: str, limit: float, capacity: float) -> None:
        link = self._link
        key = link.redis.key("limits", deployment, kind)
        value = orjson.dumps([limit, capacity])
        message = orjson.dumps(
            {"k": "limits", "from": link.replica, "dep": deployment, "kind": kind,
             "limit": limit, "capacity": capacity}
        )  # fmt: skip

        async def write(client: Redis) -> object:
            pipe = client.pipeline(transaction=False)
            pipe.set(key, value, ex=LIMITS_TTL)
            pipe.publish(link.events_channel, message)
            return await pipe.execute()

        link.send("limits", write)

    def paused(self, deployment: str, seconds: float, factor: float) -> None:
        until = time.monotonic() + seconds
        if until <= self._paused_until.get(deployment, 0.0) + 0.05:
            return  # the others already wait at least as long
        self._paused_until[deployment] = until
        self._link.publish("paused", {"dep": deployment, "s": seconds, "f": factor})

    # -- other replicas' news -----------------------------------------------------------------

    def _on_limits(self, event: dict[str, object]) -> None:
        admission = self._admissions.get(str(event["dep"]))
        if admission is not None:
            admission.adopt_limit(
                str(event["kind"]),
                float(event["limit"]),  # type: ignore[arg-type]
                float(event["capacity"]),  # type: ignore[arg-type]
            )

    def _on_paused(self, event: dict[str, object]) -> None:
        admission = self._admissions.get(str(event["dep"]))
        if admission is not None:
            admission.adopt_pause(float(event["s"]), float(event["f"]))  # type: ignore[arg-type]

    # -- the sync loop's work -----------------------------------------------------------------

    async def sync(self, link: SharedLink) -> None:
        """Heartbeat, count the live replicas, and adopt limits learned elsewhere."""
        ttl = max(int(link.interval * 3000), 1000)
        count = await link.call(
            "heartbeat",
            self._heartbeat(keys=[link.redis.key("replicas")], args=[link.replica, ttl]),
        )
        self._set_replicas(max(int(count), 1))
        keys = [link.redis.key("limits", d, k) for d in self._admissions for k in KINDS]
        if not keys:
            return
        values = await link.call("sync_limits", link.client.mget(keys))
        pairs = [(d, k) for d in self._admissions for k in KINDS]
        for (deployment, kind), value in zip(pairs, values, strict=True):
            if value is not None:
                limit, capacity = orjson.loads(value)
                self._admissions[deployment].adopt_limit(kind, limit, capacity)

    def _set_replicas(self, count: int) -> None:
        if count == self.replicas:
            return
        self.replicas = count
        for admission in self._admissions.values():
            admission.set_share(1.0 / count)

    async def leave(self, link: SharedLink) -> None:
        """Leave the count at shutdown, so the others take back this replica's share."""
        if link.up:
            with contextlib.suppress(Exception):  # it ages out of the set anyway
                await link.call("leave", link.client.zrem(link.redis.key("replicas"), link.replica))

    def next_due(self) -> float | None:
        return None

    async def run_due(self, link: SharedLink, now: float) -> None:
        return None

    def on_down(self) -> None:
        """Keep the last share: the other replicas still use the provider, Redis or not."""

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "lockgate_shared_replicas",
            "Live replicas sharing each deployment's capacity (as last counted).",
            value=self.replicas,
        )

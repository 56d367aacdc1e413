"""Several replicas acting as one gateway: the shared-state features wired to a Redis link
(cooldowns, learned limits, coalescing), started and stopped with the app."""

from __future__ import annotations

from lockgate.config.schema import RedisConfig
from lockgate.core.pipeline import Pipeline
from lockgate.core.tasks import TaskTracker
from lockgate.features.metrics import Metrics
from lockgate.features.shared_coalesce import RemoteCoalescer
from lockgate.features.shared_cooldowns import CircuitSync
from lockgate.features.shared_limits import CapacitySync
from lockgate.features.shared_state import SharedLink
from lockgate.storage.redis import SharedRedis


class Replicas:
    def __init__(
        self,
        redis: SharedRedis,
        cfg: RedisConfig,
        pipeline: Pipeline,
        tasks: TaskTracker,
        metrics: Metrics,
    ) -> None:
        deployments = {d.id: d for g in pipeline.router.groups() for d in g.deployments}
        self.link = SharedLink(redis, tasks, interval=cfg.sync_interval)
        self.circuits = CircuitSync(
            self.link, [d.breaker for d in deployments.values()], cfg.probe_lease
        )
        self.capacity = CapacitySync(
            self.link, {dep_id: d.admission for dep_id, d in deployments.items()}
        )
        self.coalescer = RemoteCoalescer(self.link, cfg.coalesce_wait)
        pipeline.cross_replica = self.coalescer
        for collector in (self.link, self.capacity, self.coalescer):
            metrics.registry.register(collector)

    def start(self) -> None:
        self.link.start()

    async def stop(self) -> None:
        await self.capacity.leave(self.link)
        await self.link.stop()

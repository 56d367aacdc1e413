"""What a running gateway holds, shared by the edge and the lifecycle code."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from lockgate.config.schema import Config
from lockgate.core.pipeline import Pipeline
from lockgate.core.tasks import TaskTracker
from lockgate.features.metrics import Metrics
from lockgate.features.replicas import Replicas
from lockgate.providers.http import HttpPool
from lockgate.storage.redis import SharedRedis


@dataclass
class GatewayState:
    config: Config
    pipeline: Pipeline
    metrics: Metrics
    tasks: TaskTracker
    http: HttpPool
    redis: SharedRedis | None = None
    replicas: Replicas | None = None  # shared cooldowns, limits, coalescing (with redis)
    draining: bool = False


STATE = web.AppKey("lockgate_state", GatewayState)

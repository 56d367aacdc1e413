"""What a running gateway holds, shared by the edge and the lifecycle code."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from lockgate.config.schema import Config
from lockgate.core.pipeline import Pipeline
from lockgate.core.tasks import TaskTracker
from lockgate.features.metrics import Metrics
from lockgate.providers.http import HttpPool
from lockgate.storage.redis import SharedRedis
from lockgate.storage.service import Database


@dataclass
class GatewayState:
    config: Config
    pipeline: Pipeline
    metrics: Metrics
    tasks: TaskTracker
    http: HttpPool
    redis: SharedRedis | None = None
    database: Database | None = None  # keys, budgets, the spend ledger (None: turned off)
    draining: bool = False


STATE = web.AppKey("lockgate_state", GatewayState)

"""What a running gateway holds, shared by the edge and the lifecycle code."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from lockgate.config.schema import Config
from lockgate.core.pipeline import Pipeline
from lockgate.core.tasks import TaskTracker
from lockgate.features.keyauth import KeyCache
from lockgate.features.metrics import Metrics
from lockgate.providers.http import HttpPool
from lockgate.storage.service import Database

if TYPE_CHECKING:  # Redis's modules load only when the config has a redis section
    from lockgate.features.replicas import Replicas
    from lockgate.storage.redis import SharedRedis


@dataclass
class GatewayState:
    config: Config
    pipeline: Pipeline
    metrics: Metrics
    tasks: TaskTracker
    http: HttpPool
    redis: SharedRedis | None = None
    # Releases what adapters hold beyond HTTP sessions (model threads), run at shutdown.
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    database: Database | None = None  # keys, budgets, the spend ledger (None: turned off)
    replicas: Replicas | None = None  # shared cooldowns, limits, coalescing (with redis)
    keys: KeyCache | None = None  # virtual keys (with a database)
    draining: bool = False


STATE = web.AppKey("lockgate_state", GatewayState)

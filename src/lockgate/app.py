"""Build the gateway app and its state from config; lifecycle (start, drain, close)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from lockgate.api import (
    admin,
    cache_admin,
    dashboard_routes,
    endpoints,
    ops_routes,
)
from lockgate.api.middleware import gateway_middleware
from lockgate.config.schema import Config, CooldownConfig, ModelConfig
from lockgate.core.admission import Admission
from lockgate.core.auth import Authenticator
from lockgate.core.cooldown import Breaker
from lockgate.core.pipeline import Pipeline
from lockgate.core.router import Deployment, ModelGroup, Router
from lockgate.core.tasks import TaskTracker
from lockgate.core.types import Usage
from lockgate.features.budgets import LocalBudgets
from lockgate.features.cache.response_cache import SavedCost
from lockgate.features.cache.wiring import attach_embedders, build_cache
from lockgate.features.enforce import Governor
from lockgate.features.keyauth import KeyCache
from lockgate.features.metrics import Metrics
from lockgate.features.pricing import PriceBook
from lockgate.features.ratelimit import LocalRateLimiter
from lockgate.features.redaction import BodyPolicy
from lockgate.features.tracing import build_tracing
from lockgate.providers.http import HttpPool
from lockgate.providers.registry import ProviderContext, create_provider
from lockgate.state import STATE, GatewayState
from lockgate.storage.retention import Retention
from lockgate.storage.service import Database

if TYPE_CHECKING:
    from lockgate.storage.redis import SharedRedis

log = logging.getLogger("lockgate")
Closer = Callable[[], Awaitable[None]]


def build_router(
    models: list[ModelConfig],
    http: HttpPool,
    cooldown: CooldownConfig,
    metrics: Metrics,
    closers: list[Closer] | None = None,
) -> Router:
    names = Counter((d.provider, d.model) for m in models for d in m.deployments)
    groups = []
    for model in models:
        deployments = []
        for i, cfg in enumerate(model.deployments):
            default_id = f"{cfg.provider}/{cfg.model}"
            if names[(cfg.provider, cfg.model)] > 1:
                default_id = f"{model.name}#{i}:{default_id}"
            dep_id = cfg.id or default_id
            admission = Admission(max_concurrency=cfg.max_concurrency, rpm=cfg.rpm, tpm=cfg.tpm)
            deployment = Deployment(
                id=dep_id,
                provider=cfg.provider,
                model=cfg.model,
                weight=cfg.weight,
                adapter=create_provider(
                    cfg,
                    ProviderContext(
                        deployment=dep_id,
                        http=http,
                        on_key_event=metrics.provider_key,
                        on_limits=admission.observe,
                        closers=closers if closers is not None else [],
                    ),
                ),
                breaker=Breaker(dep_id, cooldown, metrics.circuit),
                first_token_timeout=cfg.first_token_timeout,
                idle_timeout=cfg.idle_timeout,
                context_window=cfg.context_window,
                price=float(cfg.prices.input + cfg.prices.output) if cfg.prices else float("inf"),
                admission=admission,
            )
            admission.typical_latency = deployment.typical_latency
            deployments.append(deployment)
        groups.append(
            ModelGroup(
                model.name,
                deployments,
                retries=model.retries,
                strategy=model.strategy,
                coalesce=model.coalesce,
                hedge_after=model.hedge_after,
                fallbacks=tuple(model.fallbacks),
                context_window_fallbacks=tuple(model.context_window_fallbacks),
                content_policy_fallbacks=tuple(model.content_policy_fallbacks),
            )
        )
    return Router(groups)


def build_app(config: Config) -> web.Application:
    server = config.server
    app = web.Application(
        middlewares=[gateway_middleware],
        client_max_size=server.max_body_bytes + 1,
    )
    http = HttpPool()
    closers: list[Closer] = []
    metrics = Metrics()
    master = server.master_key.get_secret_value() if server.master_key else None
    tasks = TaskTracker()
    router = build_router(config.models, http, config.cooldown, metrics, closers)
    prices = price_book(config.models, router)
    metrics.registry.register(prices)
    database = Database(config.database, tasks) if config.database is not None else None
    if database is not None:
        metrics.registry.register(database.ledger)
    redis = shared_redis(config)
    cache = build_cache(config, tasks, redis, saved_usd(prices, router))
    tracing = build_tracing(config.tracing)
    if tracing is not None:
        closers.append(tracing.close)
    keys = (
        KeyCache(database, ttl=config.keys.cache_ttl, negative_ttl=config.keys.negative_cache_ttl)
        if database is not None
        else None
    )
    pipeline = Pipeline(
        router=router,
        tasks=tasks,
        auth=Authenticator(master, keys),
        metrics=metrics,
        retry=config.retry,
        max_wait=config.admission.max_wait,
        spill_wait=config.admission.spill_wait,
        pricer=prices,
        ledger=database.ledger if database is not None else None,
        cache=cache,
        tracing=tracing,
        bodies=BodyPolicy(
            config.request_log.bodies, {m.name for m in config.models if m.log_bodies}
        ),
    )
    if cache is not None:
        attach_embedders(cache, config, pipeline)
        metrics.registry.register(cache.metrics)
    replicas = None
    if redis is not None and config.redis is not None:
        from lockgate.features.replicas import Replicas

        replicas = Replicas(redis, config.redis, pipeline, tasks, metrics)
    if keys is not None:
        credit = config.redis is None or config.redis.limit_credit
        pipeline.gate = governor(redis, metrics, prices, tasks, credit)
        if replicas is not None:
            keys.attach(replicas.link)
    state = GatewayState(
        config=config,
        pipeline=pipeline,
        metrics=metrics,
        tasks=tasks,
        http=http,
        redis=redis,
        closers=closers,
        database=database,
        replicas=replicas,
        keys=keys,
    )
    app[STATE] = state
    endpoints.add_routes(app)
    ops_routes.add_routes(app)
    cache_admin.add_routes(app)
    dashboard_routes.add_routes(app)
    admin.add_routes(app)
    app.on_shutdown.append(_on_shutdown)
    app.cleanup_ctx.append(_resources)
    return app


async def _on_shutdown(app: web.Application) -> None:
    # Runs after the listener closed and before in-flight requests are awaited.
    app[STATE].draining = True


def shared_redis(config: Config) -> SharedRedis | None:
    """The replicas' Redis, when configured. Redis's modules (redis-py pulls in
    OpenTelemetry's SDK) load only then: a gateway without Redis does not carry them."""
    if config.redis is None:
        return None
    from lockgate.storage.redis import SharedRedis

    return SharedRedis(config.redis)


def governor(
    redis: SharedRedis | None,
    metrics: Metrics,
    prices: PriceBook,
    tasks: TaskTracker,
    credit: bool = True,
) -> Governor:
    """Virtual keys' limits and budgets: shared through Redis when configured."""
    if redis is not None:
        from lockgate.features.budgets_redis import RedisBudgets
        from lockgate.features.ratelimit_redis import RedisRateLimiter
        from lockgate.features.shared_admit import SharedAdmission

        limiter = RedisRateLimiter(redis, tasks=tasks, metrics=metrics.limits, credit=credit)
        budgets = RedisBudgets(redis, tasks=tasks, metrics=metrics.limits, leases=credit)
        shared = SharedAdmission(limiter, budgets, tasks)
        return Governor(limiter, budgets, prices, tasks, shared=shared)
    local = LocalRateLimiter(metrics=metrics.limits)
    return Governor(local, LocalBudgets(metrics=metrics.limits), prices, tasks)


def saved_usd(book: PriceBook, router: Router) -> SavedCost:
    """What an answer from a deployment cost, in USD: what a cache hit on it saves."""
    deployments = {d.id: d for g in router.groups() for d in g.deployments}

    def saved(deployment: str, usage: Usage) -> float:
        dep = deployments.get(deployment)
        if dep is None:
            return 0.0
        return book.quote(dep.id, dep.provider, dep.model, usage).nanos / 1e9

    return saved


def price_book(models: list[ModelConfig], router: Router) -> PriceBook:
    """Prices for every deployment: its configured `prices`, else genai-prices' figures."""
    overrides = {}
    for model, group in zip(models, router.groups(), strict=True):
        for cfg, dep in zip(model.deployments, group.deployments, strict=True):
            if cfg.prices is not None:
                overrides[dep.id] = cfg.prices
    book = PriceBook(overrides)
    book.warm((d.id, d.provider, d.model) for g in router.groups() for d in g.deployments)
    return book


async def _resources(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    retention = None
    if state.database is not None:
        await state.database.start()
        if Retention.wanted(state.config.request_log):
            retention = Retention(state.config.request_log, state.database.engine, state.tasks)
            retention.start()
    if state.replicas is not None:
        state.replicas.start()
    yield
    if retention is not None:
        await retention.stop()
    if state.replicas is not None:
        await state.replicas.stop()
    if state.database is not None:
        await state.database.close(grace=state.config.server.shutdown_timeout)
    if isinstance(state.pipeline.gate, Governor):  # its credit and leases given back
        await state.pipeline.gate.close()
    await state.tasks.drain(grace=state.config.server.shutdown_timeout)
    if state.pipeline.cache is not None:
        await state.pipeline.cache.close()
    await state.http.close()
    for close in state.closers:
        await close()
    if state.redis is not None:
        await state.redis.close()

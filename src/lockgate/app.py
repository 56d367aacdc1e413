"""Build the gateway app and its state from config; lifecycle (start, drain, close)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator

from aiohttp import web

from lockgate.api import anthropic_routes, openai_routes, ops_routes
from lockgate.api.middleware import gateway_middleware
from lockgate.config.schema import Config, CooldownConfig, ModelConfig
from lockgate.core.admission import Admission
from lockgate.core.auth import Authenticator
from lockgate.core.cooldown import Breaker
from lockgate.core.pipeline import Pipeline
from lockgate.core.router import Deployment, ModelGroup, Router
from lockgate.core.tasks import TaskTracker
from lockgate.features.metrics import Metrics
from lockgate.providers.http import HttpPool
from lockgate.providers.registry import ProviderContext, create_provider
from lockgate.state import STATE, GatewayState
from lockgate.storage.redis import SharedRedis

log = logging.getLogger("lockgate")


def build_router(
    models: list[ModelConfig], http: HttpPool, cooldown: CooldownConfig, metrics: Metrics
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
                    ),
                ),
                breaker=Breaker(dep_id, cooldown, metrics.circuit),
                first_token_timeout=cfg.first_token_timeout,
                idle_timeout=cfg.idle_timeout,
                price=cfg.prices.input + cfg.prices.output if cfg.prices else float("inf"),
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
    metrics = Metrics()
    master = server.master_key.get_secret_value() if server.master_key else None
    tasks = TaskTracker()
    pipeline = Pipeline(
        router=build_router(config.models, http, config.cooldown, metrics),
        tasks=tasks,
        auth=Authenticator(master),
        metrics=metrics,
        retry=config.retry,
        max_wait=config.admission.max_wait,
    )
    redis = SharedRedis(config.redis) if config.redis is not None else None
    state = GatewayState(
        config=config, pipeline=pipeline, metrics=metrics, tasks=tasks, http=http, redis=redis
    )
    app[STATE] = state
    openai_routes.add_routes(app)
    anthropic_routes.add_routes(app)
    ops_routes.add_routes(app)
    app.on_shutdown.append(_on_shutdown)
    app.cleanup_ctx.append(_resources)
    return app


async def _on_shutdown(app: web.Application) -> None:
    # Runs after the listener closed and before in-flight requests are awaited.
    app[STATE].draining = True


async def _resources(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    yield
    await state.tasks.drain(grace=state.config.server.shutdown_timeout)
    await state.http.close()
    if state.redis is not None:
        await state.redis.close()

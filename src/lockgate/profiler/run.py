"""Runs a profile: optionally starts the gateway in process, drives the load, prices the
answers and builds the report."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any, TextIO

from aiohttp import web

from lockgate.core.errors import GatewayError
from lockgate.core.tasks import TaskTracker
from lockgate.profiler.load import run_load
from lockgate.profiler.options import BenchOptions
from lockgate.profiler.pricing import SamplePricer
from lockgate.profiler.prompts import PromptSource, load_prompts
from lockgate.profiler.report import Progress
from lockgate.profiler.stats import Collector, advertised_limits, summarize
from lockgate.state import STATE, GatewayState


async def profile(
    options: BenchOptions,
    *,
    progress: TextIO | None = None,
    config_path: str | None = None,
) -> dict[str, Any]:
    """Profile ``options.model`` and return the report. With ``config_path`` a gateway
    is started in this process from that config (without its database) and profiled."""
    if config_path is None:
        return await _profile(options, progress, None)
    async with in_process_gateway(config_path) as (url, key, state):
        options = dataclasses.replace(options, url=url, api_key=key, direct=False)
        return await _profile(options, progress, state)


@contextlib.asynccontextmanager
async def in_process_gateway(
    config_path: str,
) -> AsyncIterator[tuple[str, str | None, GatewayState]]:
    from lockgate.app import build_app
    from lockgate.config.loader import load_config

    config = await asyncio.to_thread(load_config, config_path)
    # A rehearsal must not bill anyone: no ledger rows, no key look-ups.
    config = config.model_copy(update={"database": None})
    # Building warms genai-prices' indexes, seconds of CPU that would stall this loop.
    app = await asyncio.to_thread(build_app, config)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        master = config.server.master_key
        yield (
            f"http://127.0.0.1:{port}",
            master.get_secret_value() if master else None,
            app[STATE],
        )
    finally:
        await runner.cleanup()


async def _profile(
    options: BenchOptions, progress_out: TextIO | None, state: GatewayState | None
) -> dict[str, Any]:
    bodies = (
        await asyncio.to_thread(load_prompts, options.prompts_file)
        if options.prompts_file
        else None
    )
    source = PromptSource(
        options.model,
        prompt_tokens=options.prompt_tokens,
        max_tokens=options.max_tokens,
        stream=options.stream,
        bodies=bodies,
        seed=options.seed,
    )
    collector = Collector()
    tasks = TaskTracker()
    stop = asyncio.Event()
    progress = Progress(progress_out, collector, options.duration) if progress_out else None
    if progress is not None:
        tasks.spawn(progress.run(stop), name="bench-progress")
    try:
        start = await run_load(options, source, collector, tasks)
        elapsed = time.monotonic() - start
    finally:
        stop.set()
        await tasks.drain(grace=1.0)
    # Catalogue look-ups (genai-prices) read and index its data: off the loop.
    pricer = await asyncio.to_thread(_pricer, options, state)
    samples = collector.samples
    costs = await asyncio.to_thread(lambda: [pricer(s) for s in samples])
    return summarize(
        options,
        samples,
        costs,
        elapsed,
        limits=_limits(options, collector, state),
        cost_source=pricer.source(),
    )


def _pricer(options: BenchOptions, state: GatewayState | None) -> SamplePricer:
    if state is None:
        return SamplePricer(options)
    from lockgate.app import price_book

    router = state.pipeline.router
    deployments = {d.id: d for g in router.groups() for d in g.deployments}

    def resolve(deployment: str) -> tuple[str, str, str] | None:
        found = deployments.get(deployment)
        return (found.id, found.provider, found.model) if found is not None else None

    return SamplePricer(options, price_book(state.config.models, router), resolve)


def _limits(
    options: BenchOptions, collector: Collector, state: GatewayState | None
) -> dict[str, Any]:
    """Direct: the provider's own headers. Through lockgate, which does not forward them:
    in process, what the gateway learned from the provider; otherwise the gateway's own
    per-key limit headers, if the key has limits."""
    headers = advertised_limits(collector.samples)
    if options.direct:
        return {"source": "provider x-ratelimit-* headers", **headers}
    learned = _learned(options.model, state) if state is not None else None
    if learned is not None:
        return {"source": "provider, as learned by the in-process gateway", **learned}
    if headers["requests_per_minute"] is not None or headers["tokens_per_minute"] is not None:
        return {"source": "the gateway's own limits for this key", **headers}
    return {"source": "not visible through the gateway (use --direct or --config)", **headers}


def _learned(model: str, state: GatewayState) -> dict[str, Any] | None:
    """The provider limits the gateway's admission control adopted from the upstream's
    headers, summed over the group's deployments."""
    try:
        group, _ = state.pipeline.router.resolve(model)
    except GatewayError:
        return None
    requests = tokens = 0
    for deployment in group.deployments:
        admission = deployment.admission
        if admission.requests is not None and admission.requests.learned:
            requests += int(admission.requests.limit)
        if admission.tokens is not None and admission.tokens.learned:
            tokens += int(admission.tokens.limit)
    if not requests and not tokens:
        return None
    return {
        "requests_per_minute": requests or None,
        "tokens_per_minute": tokens or None,
        "min_remaining_requests": None,
        "min_remaining_tokens": None,
    }

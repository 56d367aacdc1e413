"""`lockgate serve`: load config, bind safely, serve until SIGTERM/SIGINT, then drain."""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
import os
import signal
from collections.abc import Callable

from aiohttp import web

from lockgate import compiled
from lockgate.api.front.site import FrontSite
from lockgate.app import build_app
from lockgate.config.environment import config_from_environment, simulated_config
from lockgate.config.loader import ConfigError, load_config
from lockgate.config.schema import Config

log = logging.getLogger("lockgate")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - platforms without uvloop
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def run(config_path: str | None, *, host: str | None, port: int | None, insecure: bool) -> int:
    _report_compiled()
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(serve(config_path, host=host, port=port, insecure=insecure))


def _report_compiled() -> None:
    """Which hot modules run compiled (before the loop starts: it reads file dates)."""
    built, old = compiled.compiled(), compiled.stale()
    if old:
        log.warning(
            "compiled modules older than their sources, run `make compiled`: %s", ", ".join(old)
        )
    log.info("governance path: %d of %d modules compiled", len(built), len(compiled.MODULES))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def serve(
    config_path: str | None, *, host: str | None, port: int | None, insecure: bool
) -> int:
    try:
        config = load_config(config_path) if config_path else config_from_environment(os.environ)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    if config is not None:
        return await _serve_config(config, host=host, port=port, insecure=insecure)

    from lockgate.providers.simulator import Simulator

    simulator = Simulator()
    url = await simulator.start(host="127.0.0.1", port=0)
    log.warning(
        "No config file and no provider key in the environment (OPENAI_API_KEY, ...): serving"
        " the BUILT-IN PROVIDER SIMULATOR at %s as the upstream. Answers are simulated. Pass"
        " --config FILE or set a provider key to use real providers.",
        url,
    )
    try:
        config = simulated_config(os.environ, url)
        return await _serve_config(config, host=host, port=port, insecure=insecure)
    finally:
        await simulator.stop()


async def _serve_config(
    config: Config, *, host: str | None, port: int | None, insecure: bool
) -> int:
    server = config.server.model_copy(
        update={k: v for k, v in (("host", host), ("port", port)) if v is not None}
    )
    config = config.model_copy(update={"server": server})
    if server.master_key is None and not is_loopback(server.host) and not insecure:
        log.error(
            "refusing to listen on %s without a master key: set server.master_key "
            "(LOCKGATE_MASTER_KEY) or pass --insecure",
            server.host,
        )
        return 2
    app = build_app(config)
    runner = web.AppRunner(
        app,
        handler_cancellation=True,  # a client that hangs up cancels its upstream call
        access_log=None,
        shutdown_timeout=server.shutdown_timeout,
    )
    await runner.setup()
    tune_gc()
    site = FrontSite(runner, server.host, server.port)
    try:
        await site.start()
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", server.host, server.port, exc.strerror)
        await runner.cleanup()
        return 2
    bound = site.port
    names = ", ".join(m.name for m in config.models)
    log.info("lockgate listening on http://%s:%s (models: %s)", server.host, bound, names)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: no new connections, finishing in-flight requests")
    await runner.cleanup()
    log.info("stopped")
    return 0


def tune_gc() -> None:
    """Move everything built at start-up out of the collector's sight, and collect the young
    generation less often: full collections of a large heap were the p99 latency spikes."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 100)

"""`lockgate simulate`: command-line options, config file, and serving with N worker processes."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing
import queue
import signal
import socket
import sys
import threading
import time
from collections.abc import Coroutine
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

import yaml

from lockgate.providers.simulator.options import SimulatorOptions
from lockgate.providers.simulator.server import Simulator

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9000
_SERVER_KEYS = ("host", "port", "workers")


def _error_rate(text: str) -> tuple[int, float]:
    status, sep, rate = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return int(status), float(rate)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected STATUS=PROBABILITY, got {text!r}") from None


def _outage(text: str) -> tuple[float, float]:
    start, sep, duration = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return float(start), float(duration)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected START_S:DURATION_S, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The simulator's flags; each mirrors a `SimulatorOptions` field (flags beat --config)."""
    add = parser.add_argument
    add(
        "--config", metavar="FILE.yaml", help="YAML file with option fields (and host/port/workers)"
    )
    add("--host", help=f"interface to listen on (default {DEFAULT_HOST})")
    add("--port", type=int, help=f"port to listen on (default {DEFAULT_PORT})")
    add("--workers", type=int, help="processes sharing the port with SO_REUSEPORT (default 1)")
    add("--latency", help="delay of a non-streaming answer: 200ms, uniform:100ms,300ms, "
        "lognormal:median=1500ms,p99=20000ms")  # fmt: skip
    add("--ttft", help="time to first token of a stream (default: --latency)")
    add("--inter-token", help="delay between stream chunks")
    add("--completion-tokens", type=int, help="words in an answer (default 16)")
    add("--stream-chunks", type=int, help="content chunks per stream (default: one per token)")
    add("--rpm", type=int, help="requests per minute before 429")
    add("--tpm", type=int, help="tokens per minute before 429")
    add("--burst-seconds", type=float,
        help="seconds of budget the rate buckets hold (default 60: a minute at once)")  # fmt: skip
    add("--error-rate", type=_error_rate, action="append", metavar="STATUS=P",
        help="inject an error status with probability P (repeatable), e.g. 500=0.02")  # fmt: skip
    add("--outage", type=_outage, action="append", metavar="START:SECONDS",
        help="every request fails from START s after start for SECONDS s (repeatable)")  # fmt: skip
    add("--outage-mode", choices=("error", "reset"), help="503 (default) or connection reset")
    add("--broken-stream-rate", type=float, help="probability a stream is cut off mid-way")
    add("--context-window", type=int, help="prompt tokens above which requests get 400")
    add("--content-filter-phrase", help="prompts containing it get a content_filter 400")
    add("--api-key", help="require this key (Bedrock: access key id) (default: accept any)")
    add("--secret-key", help="Bedrock: verify SigV4 signatures with this secret access key")
    add("--model", action="append", dest="models", metavar="NAME",
        help="a model name to list and accept (repeatable; default: accept any)")  # fmt: skip
    add("--seed", type=int, help="seed for faults and latency")
    add("--embedding-dim", type=int, help="embedding size (default 1536)")


def _load_config(path: str) -> dict[str, Any]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of option names to values")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def settings_from_args(args: argparse.Namespace) -> tuple[SimulatorOptions, str, int, int]:
    """Options, host, port and worker count from the config file overlaid with the flags."""
    fields: dict[str, Any] = _load_config(args.config) if args.config else {}
    server = {key: fields.pop(key) for key in _SERVER_KEYS if key in fields}
    for name in SimulatorOptions.model_fields:
        value = getattr(args, name, None)
        if value is None:
            continue
        if name == "error_rates":
            continue
        fields[name] = value
    if args.error_rate:
        fields["error_rates"] = {**fields.get("error_rates", {}), **dict(args.error_rate)}
    if args.outage:
        fields["outages"] = list(args.outage)
    options = SimulatorOptions.model_validate(fields)
    host = str(args.host or server.get("host") or DEFAULT_HOST)
    port = int(args.port if args.port is not None else server.get("port", DEFAULT_PORT))
    workers = int(args.workers if args.workers is not None else server.get("workers", 1))
    if workers < 1:
        raise ValueError("--workers must be at least 1")
    return options, host, port, workers


def _per_worker(options: SimulatorOptions, index: int, workers: int) -> SimulatorOptions:
    """Each worker enforces its share of the limits and draws from its own seed."""
    update: dict[str, Any] = {}
    if options.rpm is not None:
        update["rpm"] = math.ceil(options.rpm / workers)
    if options.tpm is not None:
        update["tpm"] = math.ceil(options.tpm / workers)
    if options.seed is not None:
        update["seed"] = options.seed + index
    return options.model_copy(update=update) if update else options


def _run_loop(coro: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        asyncio.run(coro)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coro)


async def _serve(
    options: SimulatorOptions,
    host: str,
    port: int,
    *,
    reuse_port: bool,
    started_at: float | None,
    banner: str | None,
    ready: Queue[tuple[str, str]] | None,
) -> None:
    simulator = Simulator(options, max_records=0)
    try:
        url = await simulator.start(host, port, reuse_port=reuse_port, started_at=started_at)
    except OSError as exc:
        if ready is None:
            raise
        ready.put(("error", str(exc)))
        return
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if banner is not None:
        print(banner.format(url=url), flush=True)
    if ready is not None:
        ready.put(("ok", url))
    try:
        await stop.wait()
    finally:
        await simulator.stop()


def _worker_main(
    options: SimulatorOptions,
    host: str,
    port: int,
    started_at: float,
    ready: Queue[tuple[str, str]],
) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        _run_loop(
            _serve(
                options,
                host,
                port,
                reuse_port=True,
                started_at=started_at,
                banner=None,
                ready=ready,
            )
        )


def _reserve_port(host: str) -> socket.socket:
    """Bind (without listening) a SO_REUSEPORT socket on a free port the workers then share."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, 0))
    return sock


def _serve_workers(options: SimulatorOptions, host: str, port: int, workers: int) -> int:
    context = multiprocessing.get_context("spawn")
    ready: Queue[tuple[str, str]] = context.Queue()
    holder = _reserve_port(host) if port == 0 else None
    if holder is not None:
        port = holder.getsockname()[1]
    started_at = time.monotonic()
    processes = [
        context.Process(
            target=_worker_main,
            args=(_per_worker(options, i, workers), host, port, started_at, ready),
            name=f"lockgate-simulator-{i}",
            daemon=True,
        )
        for i in range(workers)
    ]
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    status = 0
    try:
        for process in processes:
            process.start()
        for _ in processes:
            try:
                state, detail = ready.get(timeout=60)
            except queue.Empty:
                state, detail = "error", "no answer within 60 s"
            if state != "ok":
                print(f"lockgate simulate: a worker failed to start: {detail}", file=sys.stderr)
                return 1
        limits = ", rpm/tpm split evenly across workers" if options.rpm or options.tpm else ""
        print(
            f"lockgate simulator listening on http://{host}:{port}/v1"
            f" ({workers} workers, SO_REUSEPORT{limits}); faults: {options.describe_faults()}",
            flush=True,
        )
        while not stop.wait(0.25):
            if not all(p.is_alive() for p in processes):
                print("lockgate simulate: a worker exited; stopping", file=sys.stderr)
                status = 1
                break
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if holder is not None:
            holder.close()
    return status


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM, then return 0 (2 for bad options, 1 if serving fails)."""
    try:
        options, host, port, workers = settings_from_args(args)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"lockgate simulate: {exc}", file=sys.stderr)
        return 2
    if workers > 1:
        return _serve_workers(options, host, port, workers)
    banner = (
        f"lockgate simulator listening on {{url}} (1 worker); faults: {options.describe_faults()}"
    )
    try:
        _run_loop(
            _serve(
                options, host, port, reuse_port=False, started_at=None, banner=banner, ready=None
            )
        )
    except OSError as exc:
        print(f"lockgate simulate: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    return 0

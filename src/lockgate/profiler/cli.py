"""`lockgate bench` arguments and entry point."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from decimal import Decimal, InvalidOperation

import orjson

from lockgate.profiler.options import BenchOptions
from lockgate.profiler.report import render
from lockgate.profiler.run import profile


def add_arguments(parser: argparse.ArgumentParser) -> None:
    target = parser.add_argument_group("target")
    target.add_argument("--model", "-m", required=True, help="model group (or upstream model)")
    target.add_argument(
        "--url", default="http://127.0.0.1:4000", help="the gateway (default %(default)s)"
    )
    target.add_argument(
        "--key", help="API key (default: $LOCKGATE_MASTER_KEY; with --direct: $OPENAI_API_KEY)"
    )
    target.add_argument(
        "--direct",
        metavar="URL",
        help="profile this OpenAI-compatible upstream itself instead of a gateway",
    )
    target.add_argument(
        "--config", "-c", help="start a gateway in this process from this config and profile it"
    )
    load = parser.add_argument_group("load")
    shape = load.add_mutually_exclusive_group(required=True)
    shape.add_argument("--rps", type=float, help="open loop: requests per second")
    shape.add_argument("--concurrency", type=int, help="closed loop: requests in flight")
    load.add_argument("--duration", type=_seconds, default=10.0, help="e.g. 30s, 2m (default 10s)")
    load.add_argument("--arrivals", choices=["poisson", "fixed"], default="poisson")
    load.add_argument("--stream", action="store_true", help="stream answers; measures TTFT")
    load.add_argument("--prompt-tokens", type=int, default=500, help="synthetic prompt size")
    load.add_argument("--max-tokens", type=int, default=200)
    load.add_argument("--prompts", help='JSONL of request bodies (or {"prompt": ...}) to cycle')
    load.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    load.add_argument("--seed", type=int, help="seed for arrivals and synthetic prompts")
    price = parser.add_argument_group("pricing (when no x-lockgate-cost header says)")
    price.add_argument("--provider", default="openai", help="catalogue provider (direct mode)")
    price.add_argument("--price-input", type=_decimal, help="USD per million input tokens")
    price.add_argument("--price-output", type=_decimal, help="USD per million output tokens")
    out = parser.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print the report as JSON")
    out.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")


def _seconds(text: str) -> float:
    from lockgate.providers.simulator.options import parse_duration

    try:
        return parse_duration(text if text[-1:].isalpha() else f"{text}s")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation as exc:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from exc


def options_from(args: argparse.Namespace) -> BenchOptions:
    env_key = "OPENAI_API_KEY" if args.direct else "LOCKGATE_MASTER_KEY"
    return BenchOptions(
        model=args.model,
        url=args.direct or args.url,
        api_key=args.key or os.environ.get(env_key),
        direct=args.direct is not None,
        rps=args.rps,
        concurrency=args.concurrency,
        duration=args.duration,
        arrivals=args.arrivals,
        stream=args.stream,
        prompt_tokens=args.prompt_tokens,
        max_tokens=args.max_tokens,
        prompts_file=args.prompts,
        timeout=args.timeout,
        provider=args.provider,
        price_input=args.price_input,
        price_output=args.price_output,
        seed=args.seed,
    )


def run(args: argparse.Namespace) -> int:
    from lockgate.config.loader import ConfigError
    from lockgate.server import loop_factory

    if args.direct and args.config:
        print("--direct and --config exclude each other", file=sys.stderr)
        return 2
    try:
        options = options_from(args)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            report = runner.run(
                profile(
                    options,
                    progress=None if args.quiet else sys.stderr,
                    config_path=args.config,
                )
            )
    except (ConfigError, ValueError, OSError) as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(render(report))
    # Nothing answered is a failed profile (a wrong URL, key or model), worth a non-zero exit.
    return 0 if report["requests"]["ok"] else 1

"""The `lockgate` command line: serve, simulate, bench, check-config, migrate, spend, logs,
keys."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lockgate.config.schema import DatabaseConfig


def _serve(args: argparse.Namespace) -> int:
    from lockgate import server

    return server.run(args.config, host=args.host, port=args.port, insecure=args.insecure)


def _check_config(args: argparse.Namespace) -> int:
    from lockgate.config.loader import ConfigError, load_config

    try:
        config = load_config(args.file)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    deployments = sum(len(m.deployments) for m in config.models)
    print(f"{args.file}: ok ({len(config.models)} models, {deployments} deployments)")
    return 0


def _database(args: argparse.Namespace) -> DatabaseConfig | None:
    from lockgate.config.loader import ConfigError, load_config
    from lockgate.config.schema import Config

    try:
        config = load_config(args.config) if args.config else Config()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None
    if config.database is None:
        print("the config turns the database off (database: null)", file=sys.stderr)
    return config.database


def _migrate(args: argparse.Namespace) -> int:
    from lockgate.storage.database import safe_url
    from lockgate.storage.migrate import upgrade

    database = _database(args)
    if database is None:
        return 1
    try:
        upgrade(database, args.revision)
    except Exception as exc:
        print(f"migration failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"{safe_url(database.url.get_secret_value())}: at {args.revision}")
    return 0


def _spend(args: argparse.Namespace) -> int:
    import asyncio

    from lockgate.storage.spend_cli import print_spend

    database = _database(args)
    if database is None:
        return 1
    return asyncio.run(print_spend(database, args.by, args.days))


def _logs_tail(args: argparse.Namespace) -> int:
    import asyncio

    from lockgate.storage.logs_cli import tail

    database = _database(args)
    if database is None:
        return 1
    try:
        return asyncio.run(tail(database, args.lines, args.follow, args.interval, args.model))
    except KeyboardInterrupt:
        return 0


def _simulate(args: argparse.Namespace) -> int:
    import lockgate.providers.simulator.cli as simulator_cli

    return simulator_cli.run(args)


def _bench(args: argparse.Namespace) -> int:
    import lockgate.profiler.cli as bench_cli

    return bench_cli.run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lockgate", description="lockgate AI gateway")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", "-c", help="YAML config file (default: from the environment)")
    serve.add_argument("--host", help="override server.host")
    serve.add_argument("--port", type=int, help="override server.port")
    serve.add_argument(
        "--insecure",
        action="store_true",
        help="allow listening on a non-loopback address without a master key",
    )
    serve.set_defaults(func=_serve)

    check = sub.add_parser("check-config", help="validate a config file without serving")
    check.add_argument("file")
    check.set_defaults(func=_check_config)

    migrate = sub.add_parser("migrate", help="apply database migrations (serve does too)")
    migrate.add_argument("--config", "-c", help="YAML config file (default: the default database)")
    migrate.add_argument("--revision", default="head", help="target revision (default: head)")
    migrate.set_defaults(func=_migrate)

    spend = sub.add_parser("spend", help="spend report from the ledger")
    spend.add_argument("action", nargs="?", choices=["report"], help="(the default)")
    spend.add_argument("--config", "-c", help="YAML config file (default: the default database)")
    spend.add_argument(
        "--by",
        default="key",
        choices=["key", "user", "team", "model", "deployment", "provider", "day"],
    )
    spend.add_argument("--days", type=int, default=30, help="the last N days (default 30)")
    spend.set_defaults(func=_spend)

    logs = sub.add_parser("logs", help="the request log")
    logs_sub = logs.add_subparsers(dest="logs_command", required=True)
    logs_tail = logs_sub.add_parser("tail", help="print recent requests (--follow: keep polling)")
    logs_tail.add_argument(
        "--config", "-c", help="YAML config file (default: the default database)"
    )
    logs_tail.add_argument("--lines", "-n", type=int, default=20, help="rows to show first")
    logs_tail.add_argument(
        "--follow", "-f", action="store_true", help="print new rows as they come"
    )
    logs_tail.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    logs_tail.add_argument("--model", help="only this model group")
    logs_tail.set_defaults(func=_logs_tail)

    keys = sub.add_parser("keys", help="virtual keys, through a running gateway's admin API")
    import lockgate.keys_cli as keys_cli

    keys_cli.add_arguments(keys)
    keys.set_defaults(func=keys_cli.run)

    simulate = sub.add_parser("simulate", help="run the provider simulator")
    import lockgate.providers.simulator.cli as simulator_cli

    simulator_cli.add_arguments(simulate)
    simulate.set_defaults(func=_simulate)

    bench = sub.add_parser("bench", help="profile a model: latency, 429s, limits, cost")
    import lockgate.profiler.cli as bench_cli

    bench_cli.add_arguments(bench)
    bench.set_defaults(func=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("LOCKGATE_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Alembic announces each of its plugins at INFO on every start: noise, not news.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    return int(args.func(args))

"""The `lockgate` command line: serve, simulate, check-config."""

from __future__ import annotations

import argparse
import logging
import os
import sys


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


def _simulate(args: argparse.Namespace) -> int:
    import lockgate.providers.simulator.cli as simulator_cli

    return simulator_cli.run(args)


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

    simulate = sub.add_parser("simulate", help="run the provider simulator")
    import lockgate.providers.simulator.cli as simulator_cli

    simulator_cli.add_arguments(simulate)
    simulate.set_defaults(func=_simulate)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("LOCKGATE_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    args = build_parser().parse_args(argv)
    return int(args.func(args))

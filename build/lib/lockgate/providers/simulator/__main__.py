"""`python -m lockgate.providers.simulator`: run the provider simulator from the command line."""

from __future__ import annotations

import argparse
import sys

from lockgate.providers.simulator.cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lockgate.providers.simulator",
        description="An OpenAI-compatible provider simulator with configurable faults.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

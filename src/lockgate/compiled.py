"""The modules compiled with mypyc, and whether this tree's builds of them are current.

The governance path (rate limits, budgets, key auth, cost, the spend ledger's buffer)
runs for every request, and its Python is already written flat. Compiled to C by mypyc
(`make compiled`, which `make run` and `make test` run first), what it adds to a request
is about a third fewer instructions (docs/governance.md). The source stays the only
source: the build is the same modules, type-checked by mypy, and without it they run as
plain Python.

A build left behind by an edit would run old code, so the gateway warns at start-up,
and the test session stops, when a module's source is newer than its build
(``stale``). This module is never compiled itself.
"""

from __future__ import annotations

import importlib.machinery
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent

MODULES = (
    "lockgate.core.accounting",
    "lockgate.core.ledger_record",
    "lockgate.core.memo",
    "lockgate.features.budget_leases",
    "lockgate.features.budgets",
    "lockgate.features.enforce",
    "lockgate.features.failopen",
    "lockgate.features.keyauth",
    "lockgate.features.limit_credits",
    "lockgate.features.local_admit",
    "lockgate.features.pricing",
    "lockgate.features.ratelimit",
    "lockgate.features.shared_admit",
    "lockgate.features.tokens",
    "lockgate.storage.ledger",
    "lockgate.storage.spend_rows",
)


def source(module: str) -> Path:
    """The ``.py`` file of one of ``MODULES``."""
    return PACKAGE.parent.joinpath(*module.split(".")).with_suffix(".py")


def builds(module: str) -> list[Path]:
    """The extension files built for ``module`` (none when it is not compiled)."""
    path = source(module)
    found = (path.with_name(path.stem + s) for s in importlib.machinery.EXTENSION_SUFFIXES)
    return [build for build in found if build.exists()]


def compiled() -> list[str]:
    """The modules of ``MODULES`` that have a build here."""
    return [module for module in MODULES if builds(module)]


def stale() -> list[str]:
    """The modules whose build is older than their source (an edit since ``make
    compiled``): Python would load the build, not the edited source."""
    out = []
    for module in MODULES:
        mtime = source(module).stat().st_mtime
        if any(build.stat().st_mtime < mtime for build in builds(module)):
            out.append(module)
    return out

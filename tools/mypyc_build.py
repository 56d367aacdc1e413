"""Compile lockgate.compiled.MODULES with mypyc, in place (next to their sources).

    .venv/bin/python tools/mypyc_build.py [--clean]

Run by `make compiled`. Removes every earlier build under src/lockgate first (a module
taken off the list must not keep loading its old build), type-checks with the project's
mypy settings, and writes the extensions beside the sources; C sources and objects go to
a temporary directory. ``--clean`` only removes the builds: the modules then run as
plain Python.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
sys.path.insert(0, str(SRC))

from lockgate.compiled import MODULES  # noqa: E402


def clean() -> int:
    removed = 0
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        for path in [*SRC.glob(f"*__mypyc{suffix}"), *(SRC / "lockgate").rglob(f"*{suffix}")]:
            path.unlink()
            removed += 1
    return removed


def build() -> None:
    from mypyc.build import mypycify
    from setuptools import setup

    files = [str(Path(*module.split(".")).with_suffix(".py")) for module in MODULES]
    os.chdir(SRC)  # module names and the in-place targets are found from here
    with tempfile.TemporaryDirectory(prefix="lockgate-mypyc-") as tmp:
        extensions = mypycify(
            [f"--config-file={ROOT / 'pyproject.toml'}", *files],
            opt_level="3",
            target_dir=str(Path(tmp) / "c"),
        )
        jobs = str(os.cpu_count() or 1)
        dirs = ["--build-temp", str(Path(tmp) / "obj"), "--build-lib", str(Path(tmp) / "lib")]
        script = ["--quiet", "build_ext", "--inplace", "--parallel", jobs, *dirs]
        setup(name="lockgate-compiled", ext_modules=extensions, script_args=script)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", action="store_true", help="only remove the builds")
    args = parser.parse_args()
    removed = clean()
    if args.clean:
        print(f"removed {removed} compiled files")
        return 0
    build()
    print(f"compiled {len(MODULES)} modules with mypyc")
    return 0


if __name__ == "__main__":
    sys.exit(main())

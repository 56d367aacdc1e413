"""The governance path's mypyc builds: loaded when built, and found out when stale."""

from __future__ import annotations

import importlib
import importlib.machinery
import os
from pathlib import Path

import pytest

from lockgate import compiled

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def test_every_listed_module_is_loaded_from_its_build_when_built() -> None:
    built = compiled.compiled()
    if not built:
        if os.environ.get("LOCKGATE_REQUIRE_SERVICES") == "1":
            pytest.fail("no compiled modules: `make test` runs `make compiled` first")
        pytest.skip("not compiled here (COMPILE=0)")
    assert built == list(compiled.MODULES)  # all or none: one build makes them all
    for name in compiled.MODULES:
        module = importlib.import_module(name)
        assert module.__file__ is not None and module.__file__.endswith(SUFFIX), name
    assert compiled.stale() == []


def test_a_source_edited_after_its_build_is_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "lockgate"
    (package / "features").mkdir(parents=True)
    monkeypatch.setattr(compiled, "PACKAGE", package)
    monkeypatch.setattr(compiled, "MODULES", ("lockgate.features.a", "lockgate.features.b"))
    for name in ("a", "b"):
        (package / "features" / f"{name}.py").write_text("x = 1\n")
    assert compiled.compiled() == [] and compiled.stale() == []  # not built: plain Python
    for name in ("a", "b"):
        (package / "features" / f"{name}{SUFFIX}").write_bytes(b"")
    assert compiled.compiled() == ["lockgate.features.a", "lockgate.features.b"]
    assert compiled.stale() == []
    later = (package / "features" / f"b{SUFFIX}").stat().st_mtime + 10
    os.utime(package / "features" / "b.py", (later, later))  # edited after the build
    assert compiled.stale() == ["lockgate.features.b"]

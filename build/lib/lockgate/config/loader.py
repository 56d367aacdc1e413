"""Load configuration from YAML: `${ENV}` references, validation, errors that name their path."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lockgate.config.schema import Config

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """Invalid configuration; ``problems`` holds one ``path: what is wrong`` line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))
        self.problems = problems


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from exc
    return parse_config({} if data is None else data, env)


def parse_config(data: Any, env: Mapping[str, str] | None = None) -> Config:
    if not isinstance(data, dict):
        raise ConfigError(["(top level): must be a mapping"])
    missing: list[tuple[tuple[str | int, ...], str]] = []
    resolved = _interpolate(data, os.environ if env is None else env, [], missing)
    if missing:
        raise ConfigError(
            [f"{_path(data, loc)}: environment variable {name} is not set" for loc, name in missing]
        )
    try:
        return Config.model_validate(resolved)
    except ValidationError as exc:
        raise ConfigError(
            [f"{_path(resolved, err['loc'])}: {_message(err)}" for err in exc.errors()]
        ) from None


def _interpolate(
    node: Any,
    env: Mapping[str, str],
    loc: list[str | int],
    missing: list[tuple[tuple[str | int, ...], str]],
) -> Any:
    if isinstance(node, dict):
        return {k: _interpolate(v, env, [*loc, str(k)], missing) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, env, [*loc, i], missing) for i, v in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        missing.append((tuple(loc), name))
        return ""

    return _ENV_REF.sub(substitute, node)


def _message(err: Any) -> str:
    msg = str(err["msg"])
    if err["type"] == "extra_forbidden":
        return "unknown key"
    return msg.removeprefix("Value error, ")


def _path(data: Any, loc: tuple[str | int, ...]) -> str:
    """Render a pydantic error location, naming list items of `models` by their name."""
    parts: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(part, int) and isinstance(node, list) and parts == ["models"]:
            item = node[part] if part < len(node) else None
            name = item.get("name") if isinstance(item, dict) else None
            parts.append(str(name) if isinstance(name, str) else part)
        else:
            parts.append(part)
        node = _child(node, part)
    return _format_loc(parts)


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and part < len(node):
        return node[part]
    return None


def _format_loc(loc: list[str | int] | tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(top level)"

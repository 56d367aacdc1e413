"""Request records: what reached the simulator, with case-insensitively readable headers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar, overload

_T = TypeVar("_T")


class Headers(dict[str, str]):
    """Request headers as a plain dict (original spelling) with case-insensitive lookup."""

    def __missing__(self, key: str) -> str:
        lower = key.lower()
        for name, value in self.items():
            if name.lower() == lower:
                return value
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        if dict.__contains__(self, key):
            return True
        if not isinstance(key, str):
            return False
        lower = key.lower()
        return any(name.lower() == lower for name in self)

    @overload
    def get(self, key: str, default: None = None, /) -> str | None: ...
    @overload
    def get(self, key: str, default: str, /) -> str: ...
    @overload
    def get(self, key: str, default: _T, /) -> str | _T: ...
    def get(self, key: str, default: Any = None, /) -> Any:
        try:
            return self[key]
        except KeyError:
            return default


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What reached the simulator: ``body`` is the parsed JSON (None when absent or invalid)."""

    method: str
    path: str
    headers: Headers
    body: Any
    time: float

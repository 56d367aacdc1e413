"""What a request's headers tell the gateway: its id, its credential, its controls.

Header names are looked up in lower case (both servers' header maps answer those).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from lockgate.core.errors import BadRequest
from lockgate.core.memo import UniqueIds
from lockgate.core.types import CacheControl, RequestContext

SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
# Request ids: a random per-process prefix and a counter, unique across replicas and cheap.
_REQUEST_IDS = UniqueIds("req_", width=12)


def request_id(headers: Mapping[str, str]) -> str:
    given = headers.get("x-request-id")
    if given and SAFE_ID.match(given):
        return given
    return _REQUEST_IDS()


def credential(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer":
            return token.strip()
    return headers.get("x-api-key")  # Anthropic's header


def controls(headers: Mapping[str, str], ctx: RequestContext) -> None:
    """Per-request controls sent as headers (the SDKs' `extra_headers`)."""
    if (value := headers.get("x-lockgate-priority")) is not None:
        try:
            ctx.priority = int(value)
        except ValueError:
            raise BadRequest(
                "Header x-lockgate-priority must be an integer.", param="x-lockgate-priority"
            ) from None
    if (value := headers.get("x-lockgate-max-wait")) is not None:
        ctx.max_wait = _seconds(value, "x-lockgate-max-wait")
    if (value := headers.get("x-lockgate-coalesce")) is not None:
        if value not in ("on", "off"):
            raise BadRequest(
                "Header x-lockgate-coalesce must be 'on' or 'off'.", param="x-lockgate-coalesce"
            )
        ctx.coalesce = value == "on"
    if (value := headers.get("x-lockgate-timeout")) is not None:
        ctx.deadline = ctx.started + _seconds(value, "x-lockgate-timeout")
    if any(name in headers for name in _CACHE_HEADERS):
        ctx.cache_control = _cache_control(headers)


_CACHE_HEADERS = ("x-lockgate-cache", "x-lockgate-cache-ttl", "x-lockgate-cache-namespace")
_CACHE_WORDS = frozenset({"no-cache", "no-store", "off", "on"})


def _cache_control(headers: Mapping[str, str]) -> CacheControl:
    words = {w.strip() for w in headers.get("x-lockgate-cache", "").split(",") if w.strip()}
    if not words <= _CACHE_WORDS:
        raise BadRequest(
            "Header x-lockgate-cache takes no-cache, no-store, off or on.",
            param="x-lockgate-cache",
        )
    off = "off" in words
    ttl = headers.get("x-lockgate-cache-ttl")
    namespace = headers.get("x-lockgate-cache-namespace")
    if namespace is not None and not SAFE_ID.match(namespace):
        raise BadRequest(
            "Header x-lockgate-cache-namespace must be 1-128 letters, digits or ._:-",
            param="x-lockgate-cache-namespace",
        )
    return CacheControl(
        lookup=not off and "no-cache" not in words,
        store=not off and "no-store" not in words,
        force="on" in words,
        ttl=_seconds(ttl, "x-lockgate-cache-ttl") if ttl is not None else None,
        namespace=namespace,
    )


def _seconds(value: str, name: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not 0 <= seconds <= 86_400:
        raise BadRequest(f"Header {name} must be a number of seconds.", param=name)
    return seconds

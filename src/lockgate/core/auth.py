"""Authentication: the caller's credential -> a Principal, or 401."""

from __future__ import annotations

import hmac
from typing import Protocol

from lockgate.core.errors import AuthError
from lockgate.core.types import Principal

_ANONYMOUS = Principal(key_id="anonymous")
_MASTER = Principal(key_id="master", is_master=True)
VIRTUAL_KEY_PREFIX = "lg-"


class KeyResolver(Protocol):
    """Virtual keys: ``cached`` answers from memory (None: not known there, ask ``load``)."""

    def cached(self, credential: str) -> Principal | None: ...

    async def load(self, credential: str) -> Principal: ...


class Authenticator:
    """Checks the master key in constant time, and virtual keys through ``keys``. With no
    master key set, the gateway is open to callers without a virtual key (it then refuses
    to bind a public address unless told `--insecure`)."""

    def __init__(self, master_key: str | None, keys: KeyResolver | None = None) -> None:
        self._master = master_key.encode() if master_key else None
        self.keys = keys

    async def authenticate(self, credential: str | None) -> Principal:
        # A cache hit never suspends: the hot path awaits nothing but a miss's lookup.
        keys = self.keys
        if keys is not None and credential and credential.startswith(VIRTUAL_KEY_PREFIX):
            principal = keys.cached(credential)
            return principal if principal is not None else await keys.load(credential)
        if self._master is None:
            return _ANONYMOUS
        if not credential:
            raise AuthError(
                "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
                code="missing_api_key",
            )
        if hmac.compare_digest(credential.encode(), self._master):
            return _MASTER
        raise AuthError("Incorrect API key provided.")

"""Authentication: the caller's credential -> a Principal, or 401."""

from __future__ import annotations

import hmac

from lockgate.core.errors import AuthError
from lockgate.core.types import Principal

_ANONYMOUS = Principal(key_id="anonymous")
_MASTER = Principal(key_id="master", is_master=True)


class Authenticator:
    """Checks the master key in constant time. With no master key set, the gateway is open
    (it then refuses to bind a public address unless told `--insecure`)."""

    def __init__(self, master_key: str | None) -> None:
        self._master = master_key.encode() if master_key else None

    def authenticate(self, credential: str | None) -> Principal:
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

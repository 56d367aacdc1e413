"""AWS credentials and SigV4 request signing for Bedrock, with botocore's signer.

Resolving credentials may block (the default chain reads files and may call the instance
metadata service), so it runs in a thread, once; credentials that expire (STS, SSO,
instance roles) are refreshed in a thread when botocore says they are due. Signing itself
is CPU only (a few HMACs) and runs on the event loop.
"""

from __future__ import annotations

import asyncio

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials, RefreshableCredentials

from lockgate.core.errors import ProviderAuthError

SERVICE = "bedrock"  # the SigV4 signing name of bedrock-runtime


class Signer:
    """Signs requests for one region with static credentials or botocore's default chain."""

    def __init__(
        self,
        region: str,
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        session_token: str | None = None,
        source: Credentials | None = None,
    ) -> None:
        """Static keys, or ``source`` (botocore credentials, e.g. refreshable ones), or
        neither: botocore's default chain, found on first use."""
        self.region = region
        self._source: Credentials | None = source
        self._frozen: ReadOnlyCredentials | None = None
        if access_key and secret_key:
            self._frozen = ReadOnlyCredentials(access_key, secret_key, session_token)
        self._lock = asyncio.Lock()

    @property
    def secrets(self) -> list[str]:
        """What must never appear in an error message."""
        frozen = self._frozen
        return [s for s in (frozen.secret_key, frozen.token) if s] if frozen else []

    def _due(self) -> bool:
        source = self._source
        return isinstance(source, RefreshableCredentials) and source.refresh_needed()

    async def credentials(self) -> ReadOnlyCredentials:
        frozen = self._frozen
        if frozen is not None and not self._due():
            return frozen
        async with self._lock:
            if self._frozen is None or self._due():
                self._frozen = await asyncio.to_thread(self._resolve)
            return self._frozen

    def _resolve(self) -> ReadOnlyCredentials:
        """In a thread: find credentials with botocore's chain, or refresh expiring ones."""
        source = self._source
        if source is None:
            source = botocore.session.get_session().get_credentials()
            if source is None:
                raise ProviderAuthError(
                    "no AWS credentials: set aws_access_key_id and aws_secret_access_key on the"
                    " deployment, or configure botocore's default chain (environment, shared"
                    " config files, container or instance role)"
                )
            self._source = source
        return source.get_frozen_credentials()

    def sign(
        self, credentials: ReadOnlyCredentials, url: str, body: bytes, headers: dict[str, str]
    ) -> dict[str, str]:
        """The headers to send: ``headers`` plus X-Amz-Date, X-Amz-Security-Token and
        Authorization. ``url`` must be exactly what goes on the wire (path already quoted)."""
        request = AWSRequest(method="POST", url=url, data=body, headers=headers)
        SigV4Auth(credentials, SERVICE, self.region).add_auth(request)
        return dict(request.headers.items())

"""Virtual keys on the hot path: an in-process cache of key hash -> Principal.

A hit costs two dict lookups (the key's hash is remembered for keys presented before: a
sha256 per request was a microsecond) and never suspends; a miss reads the key, its
owner's team, and the rate limits and budgets of key, user and team in one go. Entries
live ``ttl`` seconds (refusals ``negative_ttl``); a revoke or change drops the key's
entries here at once and on the other replicas through Redis pub/sub. While the database
cannot be reached, entries past their TTL keep serving (a revoke made during the outage
is seen when it ends); keys never seen before get 503, not 401.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy.exc import SQLAlchemyError

from lockgate.core.errors import AuthError, GatewayError, Overloaded
from lockgate.core.types import Principal
from lockgate.storage.keys import KeyRow, KeyStore
from lockgate.storage.scopes import ScopeStore

if TYPE_CHECKING:
    from lockgate.features.shared_state import SharedLink
    from lockgate.storage.service import Database

log = logging.getLogger("lockgate.auth")
_DB_ERRORS = (SQLAlchemyError, OSError, TimeoutError)
_MESSAGES = {
    None: ("Incorrect API key provided.", "invalid_api_key"),
    "revoked": ("This API key has been revoked.", "key_revoked"),
    "expired": ("This API key has expired.", "key_expired"),
    "rotated": ("This API key was rotated and its grace period is over.", "key_rotated"),
}
EVENT = "keys"  # the pub/sub event kind: {"id": key id, or "*" for every key}


@dataclass(slots=True)
class _Entry:
    principal: Principal | None  # None: refused, for ``reason``
    reason: str | None
    fresh_until: float  # monotonic: after it, ask the database again
    valid_until: float | None  # epoch: the key's expiry or end of its grace period
    key_id: str | None

    def use(self) -> Principal:
        if self.principal is None:
            message, code = _MESSAGES.get(self.reason, _MESSAGES[None])
            raise AuthError(message, code=code)
        if self.valid_until is not None and time.time() >= self.valid_until:
            message, code = _MESSAGES["expired"]
            raise AuthError(message, code=code)
        return self.principal


class KeyCache:
    """The ``KeyResolver`` of core/auth.py over the database's virtual keys."""

    def __init__(
        self,
        database: Database,
        *,
        ttl: float = 30.0,
        negative_ttl: float = 5.0,
        max_entries: int = 100_000,
    ) -> None:
        self._database = database
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.max_entries = max_entries
        self._entries: dict[str, _Entry] = {}
        self._hashes: dict[str, str] = {}  # credential -> its hash, for keys presented before
        self._generation = 0  # bumped by every invalidation: a load that raced one is dropped
        self._link: SharedLink | None = None
        self._loading: dict[str, asyncio.Future[Principal]] = {}
        self._outage_logged = False

    def cached(self, credential: str) -> Principal | None:
        key_hash = self._hashes.get(credential)
        if key_hash is None:
            if len(self._hashes) >= self.max_entries:
                self._hashes.clear()
            key_hash = self._hashes[credential] = _hash(credential)
        entry = self._entries.get(key_hash)
        if entry is None or entry.fresh_until < time.monotonic():
            return None
        if entry.valid_until is None and entry.principal is not None:
            return entry.principal  # use()'s common case: no expiry, not refused
        return entry.use()

    async def load(self, credential: str) -> Principal:
        """A miss: one database lookup per key at a time, however many requests wait."""
        key_hash = _hash(credential)
        pending = self._loading.get(key_hash)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this request was cancelled, not the lookup
                return await self._load(key_hash)  # the lookup's own request went away
        future: asyncio.Future[Principal] = asyncio.get_running_loop().create_future()
        self._loading[key_hash] = future
        try:
            principal = await self._load(key_hash)
        except GatewayError as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" log when nobody waited
            raise
        except BaseException:
            future.cancel()
            raise
        finally:
            self._loading.pop(key_hash, None)
        future.set_result(principal)
        return principal

    async def _load(self, key_hash: str) -> Principal:
        generation = self._generation
        try:
            timeout = self._database.cfg.connect_timeout * 2
            entry = await asyncio.wait_for(self._fetch(key_hash), timeout)
        except _DB_ERRORS as exc:
            return self._outage(key_hash, exc)
        if self._outage_logged:
            self._outage_logged = False
            log.warning("key database reachable again; cached keys are refreshed")
        if generation == self._generation:
            self._store(key_hash, entry)
        return entry.use()

    def _outage(self, key_hash: str, exc: BaseException) -> Principal:
        if not self._outage_logged:
            self._outage_logged = True
            log.error(
                "key database unreachable (%s); serving cached keys, unknown keys get 503",
                type(exc).__name__,
            )
        stale = self._entries.get(key_hash)
        if stale is None:
            raise Overloaded(
                "Cannot verify this API key now: the key database is unavailable. Retry shortly.",
                code="auth_unavailable",
                retry_after=1.0,
            )
        stale.fresh_until = time.monotonic() + min(self.ttl, 1.0)  # ask again soon
        return stale.use()

    async def _fetch(self, key_hash: str) -> _Entry:
        engine = self._database.engine
        row = await KeyStore(engine).by_hash(key_hash)
        now = time.monotonic()
        if row is None:
            return _Entry(None, None, now + self.negative_ttl, None, None)
        reason = row.refusal(datetime.now(UTC))
        if reason is not None:
            return _Entry(None, reason, now + self.negative_ttl, None, row.id)
        scopes_db = ScopeStore(engine)
        team_id = row.team_id
        if team_id is None and row.user_id is not None:
            user = await scopes_db.get("user", row.user_id)
            team_id = user["team_id"] if user is not None else None
        scopes = [("key", row.id)]
        scopes += [("user", row.user_id)] if row.user_id else []
        scopes += [("team", team_id)] if team_id else []
        limits, budgets = await scopes_db.governance(scopes)
        principal = Principal(
            key_id=row.id,
            user_id=row.user_id,
            team_id=team_id,
            allowed_models=frozenset(row.allowed_models)
            if row.allowed_models is not None
            else None,
            limits=tuple(limits),
            budgets=tuple(budgets),
            admin=row.metadata.get("admin") is True,
            log_bodies=row.metadata.get("log_bodies") is True,
        )
        return _Entry(principal, None, now + self.ttl, _valid_until(row), row.id)

    def _store(self, key_hash: str, entry: _Entry) -> None:
        if len(self._entries) >= self.max_entries:
            now = time.monotonic()
            self._entries = {h: e for h, e in self._entries.items() if e.fresh_until >= now}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[key_hash] = entry

    # invalidation

    def invalidate(self, key_id: str | None = None) -> None:
        """Drop ``key_id``'s entries (None: every entry) in this process."""
        self._generation += 1
        if key_id is None:
            self._entries.clear()
            return
        self._entries = {h: e for h, e in self._entries.items() if e.key_id != key_id}

    def attach(self, link: SharedLink) -> None:
        """Hear the other replicas' invalidations."""
        self._link = link
        link.on(EVENT, self._heard)

    def _heard(self, event: dict[str, Any]) -> None:
        key_id = event.get("id")
        self.invalidate(None if key_id == "*" else str(key_id))

    async def changed(self, key_id: str | None = None) -> None:
        """A key (None: any key, user, team, budget or limit) changed: drop it here and,
        before returning, tell the other replicas. Without Redis they see it within ``ttl``."""
        self.invalidate(key_id)
        link = self._link
        if link is None:
            return
        message = orjson.dumps({"id": key_id or "*", "k": EVENT, "from": link.replica})
        try:
            await link.call(EVENT, link.client.publish(link.events_channel, message))
        except Exception as exc:  # the replicas' short TTL still bounds it
            log.warning("could not announce a key change to the replicas (%s)", type(exc).__name__)


def _hash(credential: str) -> str:
    return hashlib.sha256(credential.encode()).hexdigest()


def _valid_until(row: KeyRow) -> float | None:
    ends = [row.expires_at] if row.expires_at is not None else []
    if row.replaced_by is not None and row.grace_until is not None:
        ends.append(row.grace_until)
    return min(ends).timestamp() if ends else None

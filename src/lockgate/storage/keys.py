"""Virtual keys in the database: issue (hashed), look up by hash, update, revoke, rotate."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from lockgate.storage.schema import virtual_keys

KEY_PREFIX = "lg-"
_VK = virtual_keys.c


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def utc(moment: datetime | None) -> datetime | None:
    """SQLite hands timestamps back without a zone: they are UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class KeyRow:
    id: str
    key_prefix: str
    name: str | None
    user_id: str | None
    team_id: str | None
    allowed_models: list[str] | None
    expires_at: datetime | None
    metadata: dict[str, Any] = field(default_factory=dict)
    revoked_at: datetime | None = None
    replaced_by: str | None = None
    grace_until: datetime | None = None
    created_at: datetime | None = None

    @classmethod
    def of(cls, row: RowMapping) -> KeyRow:
        return cls(
            id=row["id"],
            key_prefix=row["key_prefix"],
            name=row["name"],
            user_id=row["user_id"],
            team_id=row["team_id"],
            allowed_models=row["allowed_models"],
            expires_at=utc(row["expires_at"]),
            metadata=row["metadata"] or {},
            revoked_at=utc(row["revoked_at"]),
            replaced_by=row["replaced_by"],
            grace_until=utc(row["grace_until"]),
            created_at=utc(row["created_at"]),
        )

    def refusal(self, now: datetime) -> str | None:
        """Why this key cannot be used at ``now``, or None when it can."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        rotated = self.replaced_by is not None and self.grace_until is not None
        if rotated and self.grace_until is not None and now >= self.grace_until:
            return "rotated"
        return None

    def public(self) -> dict[str, Any]:
        """What the admin API shows: everything but the key (never stored anyway)."""
        return {
            "id": self.id,
            "key_prefix": self.key_prefix,
            "name": self.name,
            "user_id": self.user_id,
            "team_id": self.team_id,
            "allowed_models": self.allowed_models,
            "expires_at": _iso(self.expires_at),
            "metadata": self.metadata,
            "revoked_at": _iso(self.revoked_at),
            "replaced_by": self.replaced_by,
            "grace_until": _iso(self.grace_until),
            "created_at": _iso(self.created_at),
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


class KeyStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(
        self,
        *,
        name: str | None = None,
        user_id: str | None = None,
        team_id: str | None = None,
        allowed_models: list[str] | None = None,
        expires_at: datetime | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> tuple[str, KeyRow]:
        """A new key: (the key itself, shown this once; its stored row)."""
        secret = new_secret()
        key_id = "key_" + secrets.token_hex(8)
        values = {
            "id": key_id,
            "key_hash": hash_key(secret),
            "key_prefix": secret[:10],
            "name": name,
            "user_id": user_id,
            "team_id": team_id,
            "allowed_models": allowed_models,
            "expires_at": expires_at,
            "metadata": metadata or {},
        }
        async with self.engine.begin() as conn:
            await conn.execute(virtual_keys.insert().values(**values))
        row = await self.get(key_id)
        assert row is not None
        return secret, row

    async def get(self, key_id: str) -> KeyRow | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(virtual_keys).where(_VK.id == key_id))).mappings()
            found = row.first()
        return KeyRow.of(found) if found is not None else None

    async def by_hash(self, key_hash: str) -> KeyRow | None:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(virtual_keys).where(_VK.key_hash == key_hash))
            found = rows.mappings().first()
        return KeyRow.of(found) if found is not None else None

    async def all(self, *, user_id: str | None = None, team_id: str | None = None) -> list[KeyRow]:
        stmt = select(virtual_keys).order_by(_VK.created_at, _VK.id)
        if user_id is not None:
            stmt = stmt.where(_VK.user_id == user_id)
        if team_id is not None:
            stmt = stmt.where(_VK.team_id == team_id)
        async with self.engine.connect() as conn:
            return [KeyRow.of(r) for r in (await conn.execute(stmt)).mappings()]

    async def update(self, key_id: str, **values: Any) -> KeyRow | None:
        allowed = {"name", "allowed_models", "expires_at", "metadata", "user_id", "team_id"}
        unknown = set(values) - allowed
        if unknown:
            raise ValueError(f"cannot update {', '.join(sorted(unknown))}")
        if values:
            async with self.engine.begin() as conn:
                await conn.execute(update(virtual_keys).where(_VK.id == key_id).values(**values))
        return await self.get(key_id)

    async def revoke(self, key_id: str) -> KeyRow | None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(virtual_keys)
                .where(_VK.id == key_id, _VK.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
        return await self.get(key_id)

    async def rotate(self, key_id: str, grace_seconds: float) -> tuple[str, KeyRow] | None:
        """A new key with the old one's owner, models, expiry and metadata; the old one
        keeps working for ``grace_seconds``."""
        old = await self.get(key_id)
        if old is None or old.refusal(datetime.now(UTC)) is not None:
            return None
        secret, new = await self.create(
            name=old.name,
            user_id=old.user_id,
            team_id=old.team_id,
            allowed_models=old.allowed_models,
            expires_at=old.expires_at,
            metadata=old.metadata,
        )
        grace = datetime.now(UTC) + timedelta(seconds=max(0.0, grace_seconds))
        async with self.engine.begin() as conn:
            await conn.execute(
                update(virtual_keys)
                .where(_VK.id == key_id)
                .values(replaced_by=new.id, grace_until=grace)
            )
        return secret, new

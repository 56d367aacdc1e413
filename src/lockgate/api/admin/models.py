"""The admin API's request and response bodies (pydantic; the OpenAPI schemas come from them)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeyCreate(_Body):
    name: str | None = Field(None, max_length=200)
    user_id: str | None = Field(None, max_length=64)
    team_id: str | None = Field(None, max_length=64)
    models: list[str] | None = Field(None, description="allowed model groups; null: every one")
    expires_at: datetime | None = None
    expires_in: float | None = Field(None, gt=0, description="seconds from now (or expires_at)")
    metadata: dict[str, Any] = Field(default_factory=dict)


class KeyUpdate(_Body):
    name: str | None = Field(None, max_length=200)
    models: list[str] | None = None
    expires_at: datetime | None = None
    metadata: dict[str, Any] | None = None


class KeyRotate(_Body):
    grace_seconds: float = Field(3600.0, ge=0, description="how long the old key keeps working")


class KeyInfo(BaseModel):
    id: str
    key_prefix: str
    name: str | None
    user_id: str | None
    team_id: str | None
    allowed_models: list[str] | None
    expires_at: datetime | None
    metadata: dict[str, Any]
    revoked_at: datetime | None
    replaced_by: str | None
    grace_until: datetime | None
    created_at: datetime | None


class KeyCreated(KeyInfo):
    key: str = Field(description="the key itself: shown this once, never stored")


class KeyList(BaseModel):
    data: list[KeyInfo]


class TeamCreate(_Body):
    id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    metadata: dict[str, Any] = Field(default_factory=dict)


class TeamUpdate(_Body):
    name: str | None = Field(None, min_length=1, max_length=200)
    metadata: dict[str, Any] | None = None


class UserCreate(_Body):
    id: str = Field(min_length=1, max_length=64)
    name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=320)
    team_id: str | None = Field(None, max_length=64)
    metadata: dict[str, Any] = Field(default_factory=dict)


class UserUpdate(_Body):
    name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=320)
    team_id: str | None = Field(None, max_length=64)
    metadata: dict[str, Any] | None = None


class Scope(BaseModel):
    """A user or a team as stored."""

    model_config = ConfigDict(extra="allow")
    id: str
    created_at: datetime | None = None


class ScopeList(BaseModel):
    data: list[Scope]


class BudgetSet(_Body):
    period: Literal["daily", "weekly", "monthly", "none"] = "monthly"
    limit_usd: Decimal = Field(ge=0, description="USD per period")
    alerts: list[float] = Field(default_factory=lambda: [0.8], description="fractions")


class LimitSet(_Body):
    model: str = Field("*", max_length=200, description='a model group, or "*" for all')
    rpm: int | None = Field(None, ge=0)
    tpm: int | None = Field(None, ge=0)
    rpd: int | None = Field(None, ge=0)
    tpd: int | None = Field(None, ge=0)


class Settings(BaseModel):
    budgets: list[dict[str, Any]]
    limits: list[dict[str, Any]]


class PeriodUsageOut(BaseModel):
    period: str
    period_start: str
    spent_usd: str
    spent_nanos: int
    requests: int
    prompt_tokens: int
    completion_tokens: int


class UsageOut(BaseModel):
    scope: str
    id: str
    periods: list[PeriodUsageOut]


class SpendRowOut(BaseModel):
    group: str | None
    cost_usd: str
    cost_nanos: int
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int


class SpendReport(BaseModel):
    group_by: str
    start: datetime
    end: datetime
    data: list[SpendRowOut]


class Deleted(BaseModel):
    id: str
    deleted: bool

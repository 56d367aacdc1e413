"""The governance schema: SQLAlchemy tables for keys, users, teams, budgets, limits, spend.

Money is an integer number of nano-dollars (USD * 10**9) everywhere: `BigInteger` columns,
never floats. Times are UTC. Changes go through a migration in `migrations/versions/`; a
test compares these tables with what the migrations build.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
)

# Constraint names are explicit so that migrations can refer to them on every database.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")
SCOPE_KINDS = ("key", "user", "team")
PERIODS = ("daily", "weekly", "monthly", "none")  # "none": never resets (a lifetime total)


def _now() -> Column[object]:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


teams = Table(
    "teams",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("metadata", JSON, nullable=False, default=dict),
    _now(),
)

users = Table(
    "users",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200)),
    Column("email", String(320)),
    Column("team_id", String(64), ForeignKey("teams.id", ondelete="SET NULL"), index=True),
    Column("metadata", JSON, nullable=False, default=dict),
    _now(),
)

virtual_keys = Table(
    "virtual_keys",
    metadata,
    Column("id", String(64), primary_key=True),
    # sha256 hex of the key: the key itself is never stored.
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_prefix", String(16), nullable=False),  # e.g. "sk-lg-ab12", to recognise it
    Column("name", String(200)),
    Column("user_id", String(64), ForeignKey("users.id", ondelete="SET NULL"), index=True),
    Column("team_id", String(64), ForeignKey("teams.id", ondelete="SET NULL"), index=True),
    Column("allowed_models", JSON),  # a list of model names; NULL: every model
    Column("expires_at", DateTime(timezone=True)),
    Column("metadata", JSON, nullable=False, default=dict),
    Column("revoked_at", DateTime(timezone=True)),
    # Rotation: the key that replaces this one, and until when this one still works.
    Column("replaced_by", String(64), ForeignKey("virtual_keys.id", ondelete="SET NULL")),
    Column("grace_until", DateTime(timezone=True)),
    _now(),
)

budgets = Table(
    "budgets",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("scope_kind", String(8), nullable=False),
    Column("scope_id", String(64), nullable=False),
    Column("limit_nanos", BigInteger, nullable=False),  # USD * 10**9
    Column("period", String(8), nullable=False),
    Column("alert_thresholds", JSON, nullable=False, default=list),  # fractions, e.g. [0.8]
    _now(),
    UniqueConstraint("scope_kind", "scope_id", "period"),
    CheckConstraint("scope_kind IN ('key', 'user', 'team')", name="scope_kind"),
    CheckConstraint("period IN ('daily', 'weekly', 'monthly', 'none')", name="period"),
    CheckConstraint("limit_nanos >= 0", name="limit"),
)

rate_limits = Table(
    "rate_limits",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("scope_kind", String(8), nullable=False),
    Column("scope_id", String(64), nullable=False),
    Column("model", String(200), nullable=False, default="*"),  # "*": all models together
    Column("rpm", BigInteger),
    Column("tpm", BigInteger),
    Column("rpd", BigInteger),
    Column("tpd", BigInteger),
    _now(),
    UniqueConstraint("scope_kind", "scope_id", "model"),
    CheckConstraint("scope_kind IN ('key', 'user', 'team')", name="scope_kind"),
)

spend_ledger = Table(
    "spend_ledger",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    # Unique: replicas and replays insert a request at most once (ON CONFLICT DO NOTHING).
    Column("request_id", String(160), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),  # when the request started
    Column("day", Date, nullable=False),  # created_at's UTC date, for daily reports
    Column("key_id", String(64), nullable=False),
    Column("user_id", String(64)),
    Column("team_id", String(64)),
    Column("endpoint", String(32), nullable=False),
    Column("model_group", String(200), nullable=False),
    Column("deployment", String(200), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("model", String(200), nullable=False),  # the upstream's model name
    Column("prompt_tokens", BigInteger, nullable=False),
    Column("completion_tokens", BigInteger, nullable=False),
    Column("cached_tokens", BigInteger, nullable=False),
    Column("cache_creation_tokens", BigInteger, nullable=False),
    Column("reasoning_tokens", BigInteger, nullable=False),
    Column("cost_nanos", BigInteger, nullable=False),  # USD * 10**9
    Column("priced", Boolean, nullable=False),  # False: no price known, cost counted as 0
    # True: the upstream reported no usage (a stream cut off): tokens are an estimate.
    Column("usage_estimated", Boolean, nullable=False),
    Column("cache_hit", Boolean, nullable=False),
    Column("coalesced", Boolean, nullable=False),
    Column("stream", Boolean, nullable=False),
    Column("latency_ms", Integer, nullable=False),
    Column("status", String(32), nullable=False),  # "ok" or an error kind
    Column("http_status", Integer, nullable=False),
    Column("attempts", Integer, nullable=False),
    # The request log (migration 0002): how the request was served, beyond what it cost.
    Column("fallback", Boolean, nullable=False, server_default=false()),
    Column("hedged", Boolean, nullable=False, server_default=false()),
    Column("cache_status", String(16), nullable=False, server_default=""),
    Column("ttft_ms", Integer),
    Column("error_type", String(64)),
    Column("bodies", Text),  # redacted request/answer JSON; NULL unless body logging is on
    Index(None, "day"),
    Index(None, "created_at", "id"),  # the request log's paging and retention order
    Index(None, "key_id", "day"),
    Index(None, "user_id", "day"),
    Index(None, "team_id", "day"),
    Index(None, "model_group", "day"),
)

spend_counters = Table(
    "spend_counters",
    metadata,
    Column("scope_kind", String(8), primary_key=True),
    Column("scope_id", String(64), primary_key=True),
    Column("period", String(8), primary_key=True),
    Column("period_start", Date, primary_key=True),  # UTC; 1970-01-01 for period "none"
    Column("spent_nanos", BigInteger, nullable=False),
    Column("requests", BigInteger, nullable=False),
    Column("prompt_tokens", BigInteger, nullable=False),
    Column("completion_tokens", BigInteger, nullable=False),
)

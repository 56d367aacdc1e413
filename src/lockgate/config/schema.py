"""The configuration schema: typed models that reject unknown keys."""

from __future__ import annotations

import importlib.util
import re
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from lockgate.embedding import missing_extra
from lockgate.providers.registry import (
    PROVIDER_FIELDS,
    REQUIRED_FIELDS,
    UNUSED_FIELDS,
    provider_names,
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(Strict):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 4000
    master_key: SecretStr | None = None
    max_body_bytes: Annotated[int, Field(gt=0)] = 16 * 1024 * 1024
    shutdown_timeout: Annotated[float, Field(gt=0)] = 30.0
    log_level: str = "INFO"


class Prices(Strict):
    """USD per million tokens, for this deployment instead of the genai-prices figures: for
    cost accounting and cost-aware routing. Cached input, cache writes and reasoning cost
    what input/output cost unless the provider bills them apart."""

    input: Annotated[Decimal, Field(ge=0)]
    output: Annotated[Decimal, Field(ge=0)]
    cached_input: Annotated[Decimal, Field(ge=0)] | None = None
    cache_write: Annotated[Decimal, Field(ge=0)] | None = None
    reasoning: Annotated[Decimal, Field(ge=0)] | None = None


class DeploymentConfig(Strict):
    provider: str
    model: str
    id: str | None = None
    api_base: AnyHttpUrl | None = None
    api_key: SecretStr | None = None
    api_keys: list[SecretStr] = Field(default_factory=list)  # a pool, used in rotation
    weight: Annotated[float, Field(gt=0)] = 1.0
    timeout: Annotated[float, Field(gt=0)] = 600.0  # a whole upstream call
    connect_timeout: Annotated[float, Field(gt=0)] = 10.0
    # Streams: the wait for the first chunk (retried or falls back, nothing was sent yet)
    # and the longest gap between two chunks (ends the stream with an error event).
    first_token_timeout: Annotated[float, Field(gt=0)] | None = None
    idle_timeout: Annotated[float, Field(gt=0)] | None = 120.0
    max_connections: Annotated[int, Field(gt=0)] = 1024
    # The model's context window in tokens: a request whose prompt (counted with tiktoken)
    # plus max_tokens exceeds it is not sent here; it goes to context_window_fallbacks.
    context_window: Annotated[int, Field(gt=0)] | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    # The output cap sent to providers that require one (Anthropic) when a request sets no
    # max_tokens; None: the adapter's default (4096 for Anthropic).
    default_max_tokens: Annotated[int, Field(gt=0)] | None = None
    prices: Prices | None = None
    # Upstream capacity (admission control); the provider's x-ratelimit-* headers and 429s
    # refine or set the rates when none are configured.
    max_concurrency: Annotated[int, Field(gt=0)] | None = None
    rpm: Annotated[int, Field(gt=0)] | None = None
    tpm: Annotated[int, Field(gt=0)] | None = None
    # Provider-specific (each accepted only by the providers that use it):
    api_version: str | None = None  # azure: `api-version` query value, or "v1"
    region: str | None = None  # bedrock: AWS region, e.g. us-east-1
    # bedrock: static AWS credentials; without them botocore's default chain is used.
    aws_access_key_id: SecretStr | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_session_token: SecretStr | None = None

    @model_validator(mode="after")
    def _one_kind_of_key(self) -> DeploymentConfig:
        if self.api_key is not None and self.api_keys:
            raise ValueError("give api_key or api_keys, not both")
        return self

    @model_validator(mode="after")
    def _provider_fields(self) -> DeploymentConfig:
        for name, providers in PROVIDER_FIELDS.items():
            if getattr(self, name) is not None and self.provider not in providers:
                raise ValueError(f"{name}: only used by provider {', '.join(sorted(providers))}")
        for name in REQUIRED_FIELDS.get(self.provider, ()):
            if getattr(self, name) is None:
                raise ValueError(f"{name}: required for provider {self.provider}")
        for name in UNUSED_FIELDS.get(self.provider, ()):
            if getattr(self, name):
                raise ValueError(f"{name}: not used by provider {self.provider}")
        if (self.aws_access_key_id is None) != (self.aws_secret_access_key is None):
            raise ValueError("aws_access_key_id and aws_secret_access_key: give both or neither")
        return self

    def keys(self) -> list[str]:
        if self.api_keys:
            return [k.get_secret_value() for k in self.api_keys]
        return [self.api_key.get_secret_value()] if self.api_key is not None else []

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        known = provider_names()
        if value not in known:
            raise ValueError(f"unknown provider {value!r}; known: {', '.join(sorted(known))}")
        return value


class RetryConfig(Strict):
    """Gateway-wide retry behaviour; a model may override `retries`."""

    retries: Annotated[int, Field(ge=0, le=10)] = 2  # extra attempts within one model group
    backoff_base: Annotated[float, Field(ge=0)] = 0.25  # seconds; full jitter up to base * 2^n
    backoff_max: Annotated[float, Field(ge=0)] = 8.0
    # A provider asking for a longer wait than this sends the request to its fallbacks.
    max_retry_after: Annotated[float, Field(ge=0)] = 10.0
    # A group whose every deployment cools down for at most this long (a provider's brief
    # retry-after) is waited for; a longer cooldown sends the request to its fallbacks.
    max_cooldown_wait: Annotated[float, Field(ge=0)] = 1.0
    budget_ratio: Annotated[float, Field(ge=0, le=1)] = 0.2  # retries per request, at most
    budget_window: Annotated[float, Field(gt=0)] = 10.0  # seconds the ratio is measured over
    budget_min_retries: Annotated[int, Field(ge=0)] = 10  # per window, so quiet times retry


class AdmissionConfig(Strict):
    max_wait: Annotated[float, Field(ge=0)] = 30.0  # default longest queue wait per request
    # A request whose wait for its deployment would be longer than this queues at another
    # deployment of the group with a shorter wait instead (max_wait is when to give up).
    spill_wait: Annotated[float, Field(ge=0)] = 1.0


class CooldownConfig(Strict):
    """When a deployment is taken out of rotation, and for how long."""

    consecutive_failures: Annotated[int, Field(ge=1)] = 3
    error_rate: Annotated[float, Field(gt=0, le=1)] = 0.5  # failures / calls over the window
    min_calls: Annotated[int, Field(ge=1)] = 10  # calls in the window before the rate counts
    window: Annotated[float, Field(gt=0)] = 30.0
    cooldown: Annotated[float, Field(gt=0)] = 5.0  # doubled after a failed half-open probe
    max_cooldown: Annotated[float, Field(gt=0)] = 60.0  # also caps a provider's retry-after


class SemanticCacheConfig(Strict):
    """Near-duplicate prompts answered from the cache (opt-in per model group)."""

    enabled: bool = False
    threshold: Annotated[float, Field(gt=0, le=1)] = 0.9  # cosine similarity for a hit
    # A configured embedding model group, called through the gateway; None: the local
    # all-MiniLM-L6-v2 model (the `semantic` extra), which needs no network.
    embedding_model: str | None = None
    tool_turns: bool = False  # also for conversations that carry tools or tool results


class ModelCacheConfig(Strict):
    """A model group's cache settings (the top-level `cache:` section must be present)."""

    enabled: bool = True
    ttl: Annotated[float, Field(gt=0)] | None = None  # seconds; None: the gateway default
    temperature: bool = False  # also cache requests with temperature > 0
    semantic: SemanticCacheConfig = Field(default_factory=SemanticCacheConfig)


class CacheStoreConfig(Strict):
    """Answers that are not stored unless said so: they are usually not worth replaying."""

    truncated: bool = False  # finish_reason "length"
    refusals: bool = False  # a refusal or finish_reason "content_filter"
    tool_calls: bool = False  # the model asked for a tool call: an agent turn in progress


class CacheConfig(Strict):
    """The response cache. Present: on for every model group unless a group says otherwise."""

    backend: Literal["memory", "sqlite", "redis"] = "memory"
    max_bytes: Annotated[int, Field(gt=0)] = 256 * 1024 * 1024  # memory and sqlite
    ttl: Annotated[float, Field(gt=0)] = 3600.0  # seconds
    max_ttl: Annotated[float, Field(gt=0)] = 7 * 86400.0  # caps a request's own ttl
    path: str = "lockgate-cache.sqlite3"  # the sqlite backend's file
    # tenant: an answer is served only to the team (or key) that caused it; shared: to all.
    scope: Literal["tenant", "shared"] = "tenant"
    store: CacheStoreConfig = Field(default_factory=CacheStoreConfig)
    semantic_max_entries: Annotated[int, Field(gt=0)] = 50_000  # vectors kept in process


class ModelConfig(Strict):
    name: Annotated[str, Field(min_length=1)]
    deployments: Annotated[list[DeploymentConfig], Field(min_length=1)]
    retries: Annotated[int, Field(ge=0, le=10)] | None = None
    strategy: Literal["weighted", "least-busy", "latency", "cost", "ordered"] = "weighted"
    # Identical concurrent requests share one upstream call: only deterministic ones
    # (temperature 0), all of them, or none. A request may say so itself (x-lockgate-coalesce).
    coalesce: Literal["deterministic", "always", "off"] = "deterministic"
    # Hedging: seconds without an answer (the first token, for streams) before a second
    # request races the first on another deployment, or "p95" of the group's recent answers.
    hedge_after: Annotated[float, Field(gt=0)] | Literal["p95"] | None = None
    fallbacks: list[str] = Field(default_factory=list)
    context_window_fallbacks: list[str] = Field(default_factory=list)
    content_policy_fallbacks: list[str] = Field(default_factory=list)
    cache: ModelCacheConfig = Field(default_factory=ModelCacheConfig)
    log_bodies: bool = False  # keep this group's request/answer bodies (redacted) in the log

    @model_validator(mode="after")
    def _semantic_extra_installed(self) -> ModelConfig:
        semantic = self.cache.semantic
        local = any(d.provider == "local-embed" for d in self.deployments)
        if semantic.enabled or local:
            problem = missing_extra(local or semantic.embedding_model is None)
            if problem is not None:
                what = "provider local-embed" if local else "cache.semantic"
                raise ValueError(f"{what} {problem}")
        return self

    @model_validator(mode="after")
    def _wildcards_match(self) -> ModelConfig:
        if self.name.endswith("*"):
            return self
        for dep in self.deployments:
            if "*" in dep.model:
                raise ValueError(
                    f"deployment model {dep.model!r} has '*' but the name is not a '*'"
                )
        return self


class RedisConfig(Strict):
    """Shared state for several replicas (limits, cooldowns, cache, coalescing). Without it,
    that state lives in each process's memory."""

    url: SecretStr  # redis://[:password@]host:port/db; a secret because it may hold one
    prefix: Annotated[str, Field(min_length=1)] = "lockgate:"  # namespaces every key
    # Redis trouble must never hang a request: each command gives up after this long and
    # the caller fails open to its in-process state.
    socket_timeout: Annotated[float, Field(gt=0)] = 0.25
    # Seconds between a replica's heartbeats and re-reads of the shared keys (what a
    # missed message costs at most); see docs/shared-state.md.
    sync_interval: Annotated[float, Field(gt=0, le=60)] = 1.0
    # Seconds one replica holds the right to probe a deployment whose cooldown ended.
    probe_lease: Annotated[float, Field(gt=0)] = 10.0
    # Seconds a request waits for another replica's identical call before calling itself.
    coalesce_wait: Annotated[float, Field(gt=0)] = 60.0
    # Virtual keys' large rate limits and budgets admitted from this replica's credit and
    # leases, without a round trip per request (docs/limits.md); false: every request is
    # checked and reserved in Redis.
    limit_credit: bool = True


_DATABASE_URL = re.compile(r"^(sqlite(\+aiosqlite)?:///.+|postgres(ql)?(\+asyncpg)?://.+)$")


class DatabaseConfig(Strict):
    """Keys, users, teams, budgets and the spend ledger: a SQLite file for one process,
    PostgreSQL for several replicas. The ledger is written in batches off the hot path;
    while the database is unreachable, records wait in memory, then in a spool file."""

    # sqlite:///path/file.db or postgresql://user:pass@host:port/db; a secret (a password).
    url: SecretStr = SecretStr("sqlite:///./lockgate.db")
    migrate: bool = True  # apply pending migrations at start-up
    connect_timeout: Annotated[float, Field(gt=0)] = 5.0
    pool_size: Annotated[int, Field(ge=1)] = 5
    batch_size: Annotated[int, Field(ge=1, le=1000)] = 500  # ledger rows per transaction
    flush_interval: Annotated[float, Field(gt=0)] = 0.5  # seconds a record may wait to batch
    buffer_records: Annotated[int, Field(ge=1)] = 10_000  # in memory, before the spool
    # Records that could not be written wait here (JSON lines) until the database is back.
    # Each replica needs its own file. Default: lockgate-ledger.spool in the working dir.
    spool_path: str | None = "lockgate-ledger.spool"
    spool_max_bytes: Annotated[int, Field(ge=0)] = 256 * 1024 * 1024
    # CPUs the SQLite ledger's writer process may run on (Linux). By default it inherits the
    # gateway's affinity: a gateway pinned to one core should give its writer another one,
    # since sharing the core slows the gateway far beyond the writer's own CPU (see
    # docs/storage.md).
    writer_cpus: list[Annotated[int, Field(ge=0)]] | None = None

    @field_validator("url")
    @classmethod
    def _supported(cls, value: SecretStr) -> SecretStr:
        # The message never repeats the URL: it may hold a password.
        if not _DATABASE_URL.match(value.get_secret_value()):
            raise ValueError("not a sqlite:///FILE or postgresql://... URL")
        return value


class RequestLogConfig(Strict):
    """The request log (the ledger's rows): bodies and retention. See docs/observability.md."""

    bodies: bool = False  # keep every request's bodies (redacted); else per model group
    retention_days: Annotated[float, Field(gt=0)] | None = None  # None: kept forever
    max_rows: Annotated[int, Field(ge=1)] | None = None  # None: no row limit
    retention_interval: Annotated[float, Field(gt=0)] = 300.0  # seconds between sweeps
    retention_batch: Annotated[int, Field(ge=1, le=100_000)] = 5000  # rows per DELETE


class TracingConfig(Strict):
    """OpenTelemetry traces, exported by OTLP/HTTP; needs the `lockgate[otel]` extra.
    Without this section nothing is traced and OpenTelemetry is never imported."""

    otlp_endpoint: Annotated[str, Field(pattern=r"^https?://")]  # e.g. http://collector:4318
    service_name: Annotated[str, Field(min_length=1)] = "lockgate"
    sample_ratio: Annotated[float, Field(ge=0, le=1)] = 1.0  # of new traces (parent decides)
    headers: dict[str, SecretStr] = Field(default_factory=dict)  # e.g. the collector's auth

    @model_validator(mode="after")
    def _extra_installed(self) -> TracingConfig:
        if importlib.util.find_spec("opentelemetry.sdk") is None:
            raise ValueError("tracing needs the otel extra: pip install 'lockgate[otel]'")
        return self


class KeysConfig(Strict):
    """Virtual keys on the hot path: how long a looked-up key is trusted without asking the
    database again (revokes and changes reach every replica at once through Redis; without
    Redis, other replicas see them within ``cache_ttl``)."""

    cache_ttl: Annotated[float, Field(gt=0)] = 30.0
    negative_cache_ttl: Annotated[float, Field(gt=0)] = 5.0  # unknown or refused keys


class Config(Strict):
    server: ServerConfig = Field(default_factory=ServerConfig)
    keys: KeysConfig = Field(default_factory=KeysConfig)
    redis: RedisConfig | None = None
    # `database: null` turns persistence off: costs still show in headers and metrics.
    database: DatabaseConfig | None = Field(default_factory=DatabaseConfig)
    cache: CacheConfig | None = None  # no section: no response cache
    retry: RetryConfig = Field(default_factory=RetryConfig)
    cooldown: CooldownConfig = Field(default_factory=CooldownConfig)
    admission: AdmissionConfig = Field(default_factory=AdmissionConfig)
    request_log: RequestLogConfig = Field(default_factory=RequestLogConfig)
    tracing: TracingConfig | None = None  # no section: no traces, no OpenTelemetry import
    models: list[ModelConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        seen: set[str] = set()
        for model in self.models:
            if model.name in seen:
                raise ValueError(f"model name {model.name!r} is configured twice")
            seen.add(model.name)
        for model in self.models:
            for kind in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
                for name in getattr(model, kind):
                    if name not in seen or name == model.name:
                        raise ValueError(
                            f"models.{model.name}.{kind}: {name!r} is not another configured model"
                        )
            embedder = model.cache.semantic.embedding_model
            if embedder is not None and embedder not in seen:
                raise ValueError(
                    f"models.{model.name}.cache.semantic.embedding_model: {embedder!r} is not "
                    "a configured model"
                )
        if self.cache is not None and self.cache.backend == "redis" and self.redis is None:
            raise ValueError("cache.backend: 'redis' needs the top-level 'redis:' section")
        return self

"""Internal request/response types. The lingua franca is the OpenAI Chat Completions shape."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the engines' dataclasses; types only, so core stays import-light
    from lockgate.features.budgets import Budget
    from lockgate.features.ratelimit import RateLimit

JSON = dict[str, Any]


@dataclass(slots=True)
class Usage:
    """Tokens as the provider reported them, normalised. Cached/reasoning are subsets."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def from_openai(cls, usage: Any) -> Usage:
        if not isinstance(usage, dict):
            return cls()
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        return cls(
            prompt_tokens=_int(usage.get("prompt_tokens")),
            completion_tokens=_int(usage.get("completion_tokens")),
            cached_tokens=_int(prompt_details.get("cached_tokens")),
            cache_creation_tokens=_int(prompt_details.get("cache_creation_tokens")),
            reasoning_tokens=_int(completion_details.get("reasoning_tokens")),
        )


# The most tokens one count may report. A broken upstream's larger figure (JSON allows
# any integer) would overflow the ledger's 64-bit columns once priced, and a batch that
# cannot be written is retried for ever, holding up the records behind it.
MAX_TOKENS = 10**12


def _int(value: Any) -> int:
    if not isinstance(value, int) or value <= 0:
        return 0
    return value if value <= MAX_TOKENS else MAX_TOKENS


@dataclass(slots=True)
class RateLimitInfo:
    """What a provider advertised about its limits on one response (None: not said)."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None


@dataclass(slots=True)
class ChatRequest:
    body: JSON
    model: str
    stream: bool = False
    include_usage: bool = False  # the client asked for the final usage chunk
    fallbacks: tuple[str, ...] | None = None  # the request's own fallback list, if it has one
    cache: CacheControl | None = None  # the body's own `cache` field (sent with `extra_body`)


@dataclass(slots=True)
class EmbeddingRequest:
    body: JSON
    model: str


@dataclass(slots=True)
class ChatResponse:
    body: JSON
    usage: Usage
    raw: bytes | None = None  # the upstream's bytes, when they may reach the client untouched


@dataclass(slots=True)
class EmbeddingResponse:
    body: JSON
    usage: Usage
    raw: bytes | None = None


@dataclass(slots=True)
class Chunk:
    """One streamed chat.completion.chunk; ``raw`` is its JSON as received, when usable as is."""

    data: JSON
    raw: bytes | None = None

    @property
    def is_usage_only(self) -> bool:
        return not self.data.get("choices") and self.data.get("usage") is not None


ChunkStream = AsyncGenerator[Chunk, None]


@dataclass(slots=True)
class Principal:
    """Who is calling: a virtual key (with its user's and team's limits and budgets loaded
    with it), the master key, or anyone on an open gateway."""

    key_id: str
    is_master: bool = False
    user_id: str | None = None
    team_id: str | None = None
    allowed_models: frozenset[str] | None = None  # model groups; None: every one
    limits: tuple[RateLimit, ...] = ()  # of the key, its user and its team
    budgets: tuple[Budget, ...] = ()
    # From the key's metadata: `"admin": true` lets the key read the dashboard (not change
    # anything); `"log_bodies": true` keeps its requests' bodies in the request log.
    admin: bool = False
    log_bodies: bool = False


@dataclass(slots=True)
class CacheControl:
    """A request's own cache instructions (headers or the body's `cache` field)."""

    lookup: bool = True  # False: no-cache (refresh: ask upstream, store the new answer)
    store: bool = True  # False: no-store
    force: bool = False  # cache even a request with temperature > 0
    ttl: float | None = None  # seconds the stored answer lives
    namespace: str | None = None

    def merge(self, other: CacheControl | None) -> CacheControl:
        """This control with ``other``'s (the body's) instructions on top."""
        if other is None:
            return self
        return CacheControl(
            lookup=self.lookup and other.lookup,
            store=self.store and other.store,
            force=self.force or other.force,
            ttl=other.ttl if other.ttl is not None else self.ttl,
            namespace=other.namespace if other.namespace is not None else self.namespace,
        )


@dataclass(slots=True)
class RequestContext:
    request_id: str
    credential: str | None = None
    principal: Principal | None = None
    started: float = field(default_factory=time.perf_counter)
    model_group: str = ""
    deployment: str = ""
    provider: str = ""
    attempts: int = 0
    retries: int = 0
    fallback: bool = False  # served (or last tried) by a fallback model group
    priority: int = 0  # higher waits less in an upstream admission queue
    max_wait: float | None = None  # longest wait in an admission queue (None: the default)
    deadline: float | None = None  # perf_counter time the answer is no longer wanted
    coalesce: bool | None = None  # the request's own choice (None: the model's setting)
    coalesced: bool = False  # answered by another identical request's upstream call
    hedged: bool = False  # a second attempt raced the first
    outcome: str = "ok"  # an error kind when the request failed after its response started
    upstream_model: str = ""  # the model name the last attempt asked the upstream for
    usage: Usage | None = None  # what this request's upstream answers used (None: none yet)
    cost: int | None = None  # nano-dollars (USD * 10**9) they cost; None: nothing billed yet
    priced: bool = True  # False when a price was unknown (that part counted as 0)
    cache_hit: bool = False  # answered from a response cache
    usage_estimated: bool = False  # a stream ended without usage: tokens were estimated
    records: int = 0  # ledger records handed off for this request
    span: Any = None  # the request's trace span, when tracing is configured
    queued: float = 0.0  # seconds spent waiting in admission queues
    operation: str = "chat"  # the GenAI operation name: chat or embeddings
    first_token: float | None = None  # seconds from the start to a stream's first chunk
    bodies: str | None = None  # redacted request/response JSON, when body logging is on
    limit_headers: dict[str, str] | None = None  # x-ratelimit-* of the gateway's own limits

    def bill(self, usage: Usage, nanos: int, priced: bool, estimated: bool = False) -> None:
        """Add one upstream answer's usage and cost (hedges may bill two)."""
        self.usage_estimated = self.usage_estimated or estimated
        if self.usage is None:
            self.usage = usage
        else:
            total = self.usage
            self.usage = Usage(
                total.prompt_tokens + usage.prompt_tokens,
                total.completion_tokens + usage.completion_tokens,
                total.cached_tokens + usage.cached_tokens,
                total.cache_creation_tokens + usage.cache_creation_tokens,
                total.reasoning_tokens + usage.reasoning_tokens,
            )
        self.cost = (self.cost or 0) + nanos
        self.priced = self.priced and priced

    cache_control: CacheControl | None = None  # from the x-lockgate-cache* headers
    cache: str = ""  # hit, miss, refresh or bypass: what the response cache did
    cache_age: float | None = None  # seconds since a cache hit's answer was stored

    def served_by(self, group: str, deployment: str, provider: str) -> None:
        """Record the attempt about to be made; the last one is what the headers show."""
        self.attempts += 1
        self.stamp(group, deployment, provider)

    def stamp(self, group: str, deployment: str, provider: str) -> None:
        self.model_group = group
        self.deployment = deployment
        self.provider = provider

    def follow(self, leader: RequestContext) -> None:
        """This request shared ``leader``'s upstream call: it was served by the same."""
        self.coalesced = True
        self.served_by(leader.model_group, leader.deployment, leader.provider)
        self.upstream_model = leader.upstream_model
        self.cost = 0  # the leader's request is billed for the shared call
        self.attempts = leader.attempts
        self.fallback = leader.fallback

    def response_headers(self) -> dict[str, str]:
        limits = self.limit_headers
        headers = limits.copy() if limits else {}  # a copy in C, not an update per header
        headers["x-request-id"] = self.request_id
        if self.cache:
            headers["x-lockgate-cache"] = self.cache
            if self.cache_age is not None:
                headers["x-lockgate-cache-age"] = str(int(self.cache_age))
        if self.deployment:
            headers["x-lockgate-model-group"] = self.model_group
            headers["x-lockgate-deployment"] = self.deployment
            headers["x-lockgate-provider"] = self.provider
            headers["x-lockgate-attempts"] = str(self.attempts)
            headers["x-lockgate-fallback"] = "true" if self.fallback else "false"
            if self.coalesced:
                headers["x-lockgate-coalesced"] = "true"
            if self.hedged:
                headers["x-lockgate-hedged"] = "true"
            if self.cost is not None:
                headers["x-lockgate-cost"] = f"{Decimal(self.cost).scaleb(-9).normalize():f}"
        return headers

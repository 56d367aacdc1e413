"""One client request as billed: the record the pipeline hands to the spend ledger.

Its own module, importing nothing else of lockgate's: the SQLite ledger writer's child
process unpickles these and should load no more than it needs.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class LedgerRecord(NamedTuple):
    """One client request, as billed. A plain tuple: built positionally on the request
    path, it costs one allocation; the writer turns it into database rows."""

    request_id: str
    started_at: float  # unix seconds
    key_id: str
    user_id: str | None
    team_id: str | None
    endpoint: str
    model_group: str
    deployment: str
    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cache_creation_tokens: int
    reasoning_tokens: int
    cost_nanos: int
    priced: bool
    usage_estimated: bool
    cache_hit: bool
    coalesced: bool
    stream: bool
    latency_ms: int
    status: str
    http_status: int
    attempts: int
    # Request-log fields; defaults so that records spooled by an older version still load.
    fallback: bool = False
    hedged: bool = False
    cache_status: str = ""  # hit, miss, refresh, bypass; "" without a response cache
    ttft_ms: int | None = None  # a stream's time to its first chunk
    error_type: str | None = None  # the error's class name when the request failed
    bodies: str | None = None  # redacted JSON of the request (and answer), when enabled

    def to_dict(self) -> dict[str, Any]:
        return dict(zip(self._fields, self, strict=True))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LedgerRecord:
        return cls(**data)

"""The ledger record the pipeline builds for a request: every field, in its place (it is
built positionally, without LedgerRecord's own constructor)."""

from __future__ import annotations

from lockgate.core.accounting import ledger_record
from lockgate.core.ledger_record import LedgerRecord
from lockgate.core.types import MAX_TOKENS, Principal, RequestContext, Usage
from lockgate.storage.spend_child import frame


def test_every_field_of_the_request_lands_in_its_place() -> None:
    ctx = RequestContext("req-1", principal=Principal("key-1", user_id="u-1", team_id="t-1"))
    ctx.stamp("group", "group/0", "openai")
    ctx.upstream_model = "gpt-4o-mini"
    ctx.bill(Usage(100, 20, 30, 5, 7), 1234, True, False)
    ctx.attempts, ctx.fallback, ctx.hedged, ctx.cache = 2, True, True, "miss"
    ctx.first_token, ctx.bodies = 0.0125, '{"messages": []}'
    record = ledger_record(
        ctx, endpoint="chat", stream=True, status="upstream_error", http_status=502,
        error_type="UpstreamError",
    )  # fmt: skip
    assert isinstance(record, LedgerRecord)
    assert len(record) == len(LedgerRecord._fields)
    fields = record.to_dict()
    assert 0 <= fields.pop("latency_ms") < 1000
    assert fields.pop("started_at") > 1.7e9
    assert fields == {
        "request_id": "req-1", "key_id": "key-1", "user_id": "u-1", "team_id": "t-1",
        "endpoint": "chat", "model_group": "group", "deployment": "group/0",
        "provider": "openai", "model": "gpt-4o-mini", "prompt_tokens": 100,
        "completion_tokens": 20, "cached_tokens": 30, "cache_creation_tokens": 5,
        "reasoning_tokens": 7, "cost_nanos": 1234, "priced": True, "usage_estimated": False,
        "cache_hit": False, "coalesced": False, "stream": True, "status": "upstream_error",
        "http_status": 502, "attempts": 2, "fallback": True, "hedged": True,
        "cache_status": "miss", "ttft_ms": 12, "error_type": "UpstreamError",
        "bodies": '{"messages": []}',
    }  # fmt: skip


def test_an_upstreams_absurd_token_count_is_capped_so_its_record_can_be_written() -> None:
    """A count past MAX_TOKENS (JSON allows any integer) is capped when parsed: priced at
    o1-pro's $600 per million output tokens it still fits the ledger's 64-bit columns,
    and the batch frame the ledger's writer gets encodes."""
    usage = Usage.from_openai(
        {"prompt_tokens": 2**64 - 1, "completion_tokens": 10**30, "total_tokens": -5}
    )
    assert usage == Usage(MAX_TOKENS, MAX_TOKENS)
    ctx = RequestContext("req-1", principal=Principal("key-1"))
    ctx.bill(usage, MAX_TOKENS * 600_000 * 2, True, False)  # nanos: $600/M both ways
    record = ledger_record(ctx, endpoint="chat", stream=False, status="ok", http_status=200)
    assert record.cost_nanos < 2**63
    assert frame([tuple(record)])  # orjson refuses integers past 64 bits

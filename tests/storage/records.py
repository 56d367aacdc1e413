"""Ledger records for storage tests."""

from __future__ import annotations

from typing import Any

from lockgate.core.ledger_record import LedgerRecord

# 2026-03-02 10:00 UTC, a Monday.
MONDAY = 1_772_445_600.0


def make_record(request_id: str, **fields: Any) -> LedgerRecord:
    values: dict[str, Any] = {
        "request_id": request_id,
        "started_at": MONDAY,
        "key_id": "key-a",
        "user_id": None,
        "team_id": None,
        "endpoint": "chat",
        "model_group": "gpt-4o-mini",
        "deployment": "openai/gpt-4o-mini",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "prompt_tokens": 100,
        "completion_tokens": 20,
        "cached_tokens": 0,
        "cache_creation_tokens": 0,
        "reasoning_tokens": 0,
        "cost_nanos": 27_000,
        "priced": True,
        "usage_estimated": False,
        "cache_hit": False,
        "coalesced": False,
        "stream": False,
        "latency_ms": 12,
        "status": "ok",
        "http_status": 200,
        "attempts": 1,
    }
    values.update(fields)
    return LedgerRecord(**values)

"""Mapping of upstream answers onto gateway errors; retry-after parsing; redaction."""

from __future__ import annotations

import orjson
import pytest

from lockgate.core import errors
from lockgate.core.redact import redact
from lockgate.providers.errors import error_from_response, parse_duration, retry_after


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("6m0s", 360.0), ("59ms", 0.059), ("1h2m3.5s", 3723.5), ("2.5", 2.5),
     ("bogus", None)],
)  # fmt: skip
def test_parse_duration(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_retry_after_prefers_ms_then_seconds_then_reset() -> None:
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after({"retry-after": "3"}) == 3.0
    assert (
        retry_after({"x-ratelimit-reset-requests": "2s", "x-ratelimit-reset-tokens": "6m0s"}) == 360
    )
    assert retry_after({}) is None


def _body(message: str, code: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": "x", "param": None, "code": code}})


@pytest.mark.parametrize(
    ("status", "body", "kind", "client_status"),
    [
        (429, _body("slow down"), errors.RateLimited, 429),
        (401, _body("bad key"), errors.ProviderAuthError, 502),
        (400, _body("too long", "context_length_exceeded"), errors.ContextWindowExceeded, 400),
        (400, _body("flagged", "content_filter"), errors.ContentFiltered, 400),
        (500, _body("boom"), errors.UpstreamError, 502),
        (503, _body("busy"), errors.Overloaded, 503),
        (529, b"overloaded", errors.Overloaded, 503),
        (504, b"", errors.Timeout, 504),
        (422, _body("bad temperature"), errors.BadRequest, 422),
    ],
)
def test_status_mapping(
    status: int, body: bytes, kind: type[errors.GatewayError], client_status: int
) -> None:
    err = error_from_response(status, body, {"retry-after": "2"}, secrets=[])
    assert type(err) is kind
    assert err.status == client_status


def test_provider_key_is_redacted_from_upstream_messages() -> None:
    key = "my-self-hosted-key-123"
    err = error_from_response(
        401, _body(f"Incorrect API key provided: {key}; also sk-proj-abcdefghijkl"), {},
        secrets=[key],
    )  # fmt: skip
    assert key not in err.message
    assert "sk-proj-abcdefghijkl" not in err.message


def test_redact_patterns() -> None:
    assert redact("Bearer abcdefghijklmnop and lg-0123456789abcdef") == "*** and ***"

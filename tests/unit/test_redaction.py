"""Body redaction: secrets and PII patterns replaced, look-alikes left alone."""

from __future__ import annotations

import orjson

from lockgate.features.redaction import BodyPolicy, luhn, redact_json, redact_text


def test_secrets_and_pii_are_replaced() -> None:
    text = (
        "mail jane.doe+work@example.co.uk or call +1 (415) 555-0123 / 020 7946 0958; "
        "card 4111 1111 1111 1111, amex 378282246310005; key sk-proj-abcdefghijkl1234, "
        "lg-0123456789abcdef, AKIAIOSFODNN7EXAMPLE, Authorization: Bearer eyJhbGciOi.JIUzI1NiJ9"
    )
    out = redact_text(text)
    for secret in (
        "jane.doe", "example.co.uk", "555-0123", "7946", "4111", "378282246310005",
        "sk-proj", "lg-0123", "AKIA", "eyJhbGci",
    ):  # fmt: skip
        assert secret not in out, (secret, out)
    assert out.count("[EMAIL]") == 1 and out.count("[CARD]") == 2
    assert out.count("[PHONE]") == 2 and out.count("***") == 4


def test_look_alikes_survive() -> None:
    # 16 digits failing the Luhn check (an order number), a year, a version, a price.
    assert not luhn("1234567890123456")
    text = "order 1234567890123456 shipped in 2026, v1.2.3, costs 1299.50 USD"
    assert redact_text(text) == text


def test_json_structure_is_kept() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "me@example.com"}], "n": 1}
    assert redact_json(body) == {
        "model": "m", "messages": [{"role": "user", "content": "[EMAIL]"}], "n": 1,
    }  # fmt: skip
    policy = BodyPolicy(False, {"private"})
    assert policy.wanted("private") and not policy.wanted("public")
    stored = orjson.loads(policy.capture(body, {"choices": []}))
    assert stored["request"]["messages"][0]["content"] == "[EMAIL]"
    assert stored["response"] == {"choices": []}

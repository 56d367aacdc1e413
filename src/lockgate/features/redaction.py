"""Redact secrets and common PII from request/answer bodies before the request log stores them.

Applied to every string inside the JSON (keys are left alone), so the stored document
stays valid JSON: API keys and bearer tokens (`core.redact`'s shapes), email addresses,
payment card numbers (13-19 digits that pass the Luhn check, so order numbers survive),
and phone numbers (an optional `+`, 9-15 digits with the usual separators).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from lockgate.core.redact import redact as redact_keys

EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
# A run of digits with spaces or dashes between groups; Luhn decides if it is a card.
CARD = re.compile(r"(?<![\d])\d(?:[ \-]?\d){12,18}(?![\d])")
PHONE = re.compile(r"(?<![\w+])\+?\(?\d[\d \-().]{7,18}\d(?![\w])")

KEY_MARK, EMAIL_MARK, CARD_MARK, PHONE_MARK = "***", "[EMAIL]", "[CARD]", "[PHONE]"


def luhn(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = int(char)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return CARD_MARK if luhn(digits) else match.group()


def _phone(match: re.Match[str]) -> str:
    digits = sum(c.isdigit() for c in match.group())
    return PHONE_MARK if 9 <= digits <= 15 else match.group()


def redact_text(text: str) -> str:
    """``text`` with keys, emails, card numbers and phone numbers replaced by markers."""
    text = redact_keys(text)
    text = EMAIL.sub(EMAIL_MARK, text)
    text = CARD.sub(_card, text)  # before phones: a card number also looks like one
    return PHONE.sub(_phone, text)


def redact_json(value: Any) -> Any:
    """A copy of a JSON value with every string redacted."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_json(v) for v in value]
    return value


class BodyPolicy:
    """Which requests keep their bodies: all (`request_log.bodies`), or those of the model
    groups with `log_bodies: true`."""

    def __init__(self, everywhere: bool, groups: set[str]) -> None:
        self.everywhere = everywhere
        self.groups = frozenset(groups)

    @property
    def any(self) -> bool:
        return self.everywhere or bool(self.groups)

    def wanted(self, *groups: str) -> bool:
        return self.everywhere or any(g in self.groups for g in groups)

    @staticmethod
    def capture(request: Any, response: Any = None) -> str:
        """The redacted document stored: ``{"request": ..., "response": ...}``."""
        doc = {"request": redact_json(request), "response": redact_json(response)}
        return orjson.dumps(doc).decode()

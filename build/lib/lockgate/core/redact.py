"""Keep secrets out of anything a client, a log or a metric can see."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Provider and gateway key shapes: OpenAI/Anthropic `sk-...`, lockgate `lg-...`, Google `AIza...`,
# AWS access key ids, and bearer tokens quoted in messages.
_KEY_PATTERN = re.compile(
    r"(sk-[A-Za-z0-9_\-*]{8,}|lg-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}"
    r"|AKIA[0-9A-Z]{12,}|(?i:bearer)\s+[A-Za-z0-9._\-]{12,})"
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace every known secret and every key-shaped token in ``text`` with `***`."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _KEY_PATTERN.sub("***", text)

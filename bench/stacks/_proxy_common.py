"""What every candidate proxy shares: the upstream URL, the key check, the forwarded body.

Each proxy does the same work per request: read the body, parse it with orjson, check the
bearer key, re-serialise the body (as a gateway does after rewriting `model`), POST it to
the upstream over a keep-alive pool, and return the upstream's body and status.
"""

from __future__ import annotations

import os

import orjson

UPSTREAM = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:9100/v1/chat/completions")
API_KEY = os.environ.get("BENCH_API_KEY", "sk-bench")
EXPECTED_AUTH = f"Bearer {API_KEY}"
UPSTREAM_HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-up"}
UNAUTHORIZED = b'{"error":{"message":"invalid api key","type":"invalid_request_error"}}'
BAD_REQUEST = b'{"error":{"message":"body is not a JSON object","type":"invalid_request_error"}}'


def upstream_payload(raw: bytes) -> bytes | None:
    """The body to send upstream, or None if `raw` is not a JSON object."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict):
        return None
    return orjson.dumps({**body, "model": body.get("model")})

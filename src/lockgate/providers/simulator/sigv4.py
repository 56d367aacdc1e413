"""SigV4 verification for the simulator's Bedrock wire: the signature a request carries,
recomputed with botocore's signer from the secret the simulator was given.

SigV4 is reproducible: the canonical request is built from the method, the raw path and
query, the headers the client listed in `SignedHeaders=` and the SHA-256 of the body, and
signed with a key derived from the secret, the date, the region and the service.
"""

from __future__ import annotations

import datetime
import hmac

from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

SIGV4_TIMESTAMP = "%Y%m%dT%H%M%SZ"
MAX_SKEW = datetime.timedelta(minutes=15)  # AWS refuses signatures older or newer than this


def check(request: web.BaseRequest, body: bytes, parts: dict[str, str], secret: str) -> str | None:
    """None when the signature holds; otherwise what is wrong, as AWS words it."""
    stamp = request.headers.get("X-Amz-Date", "")
    try:
        signed_at = datetime.datetime.strptime(stamp, SIGV4_TIMESTAMP).replace(tzinfo=datetime.UTC)
    except ValueError:
        return "Missing or malformed X-Amz-Date."
    if abs(datetime.datetime.now(datetime.UTC) - signed_at) > MAX_SKEW:
        return "Signature expired: the request's X-Amz-Date is more than 15 minutes off."
    headers = {name: request.headers.get(name, "") for name in parts["signed"].split(";")}
    url = f"http://{request.headers.get('Host', '')}{request.raw_path}"
    signed = AWSRequest(method=request.method, url=url, data=body, headers=headers)
    signed.context["timestamp"] = stamp
    signer = SigV4Auth(
        ReadOnlyCredentials(parts["key"], secret, None), parts["service"], parts["region"]
    )
    expected = signer.signature(
        signer.string_to_sign(signed, signer.canonical_request(signed)), signed
    )
    if hmac.compare_digest(expected, parts["signature"]):
        return None
    return (
        "The request signature we calculated does not match the signature you provided."
        " Check your AWS Secret Access Key and signing method. Consult the service"
        " documentation for details."
    )

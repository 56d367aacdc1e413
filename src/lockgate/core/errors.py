"""The gateway's error hierarchy: every failure a client can see is one of these.

    GatewayError                      (500, not retryable)
    ├── BadRequest                    400 invalid_request_error
    │   ├── ContextWindowExceeded     400 code=context_length_exceeded
    │   └── ContentFiltered           400 code=content_filter
    ├── AuthError                     401 (the client's key)
    ├── PermissionDenied              403
    ├── NotFound                      404 (unknown model)
    ├── PayloadTooLarge               413
    ├── RateLimited                   429 retryable, carries retry_after
    │   └── RateLimitExceeded         429 a gateway rate limit (key/user/team) refused it
    ├── BudgetExceeded                429 code=budget_exceeded, not retryable
    ├── Overloaded                    503 retryable
    │   └── CoolingDown               503 every deployment of the group is cooling down
    ├── UpstreamError                 502 retryable (provider 5xx, broken connection)
    │   └── ProviderAuthError         502 (the provider refused lockgate's key), not retryable
    └── Timeout                       504 retryable

Adapters map transport and provider errors onto these (``raise Mapped(msg) from exc``);
the HTTP edge renders them in the client's wire format, with ``headers`` added to the
response. ``kind`` is the stable machine-readable name used in metrics and logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar


class GatewayError(Exception):
    http_status: ClassVar[int] = 500
    kind: ClassVar[str] = "internal"
    type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        deployment: str | None = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status if status is not None else self.http_status
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.retry_after = retry_after
        self.deployment = deployment
        self.headers: dict[str, str] = dict(headers) if headers else {}


class BadRequest(GatewayError):
    http_status = 400
    kind = "bad_request"
    type = "invalid_request_error"


class ContextWindowExceeded(BadRequest):
    kind = "context_window_exceeded"
    default_code = "context_length_exceeded"


class ContentFiltered(BadRequest):
    kind = "content_filtered"
    default_code = "content_filter"


class AuthError(GatewayError):
    http_status = 401
    kind = "unauthenticated"
    type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDenied(GatewayError):
    http_status = 403
    kind = "permission_denied"
    type = "permission_error"


class NotFound(GatewayError):
    http_status = 404
    kind = "not_found"
    type = "invalid_request_error"
    default_code = "model_not_found"


class PayloadTooLarge(GatewayError):
    http_status = 413
    kind = "payload_too_large"
    type = "invalid_request_error"
    default_code = "request_too_large"


class RateLimited(GatewayError):
    http_status = 429
    kind = "rate_limited"
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"
    retryable = True


class RateLimitExceeded(RateLimited):
    """One of the gateway's own rate limits refused the request; nothing was called.

    ``type`` is what OpenAI sends for its own limits: ``requests`` or ``tokens``.
    ``headers`` carry OpenAI's ``x-ratelimit-*`` values for the refusing limit."""

    kind = "rate_limit_exceeded"

    def __init__(
        self,
        message: str,
        *,
        unit: str,
        scope: str,
        limit: str,
        retry_after: float | None,
        headers: Mapping[str, str],
    ) -> None:
        super().__init__(message, retry_after=retry_after, headers=headers)
        self.type = unit  # type: ignore[misc]
        self.scope = scope  # key, user, team
        self.limit = limit  # rpm, tpm, rpd, tpd


class BudgetExceeded(GatewayError):
    """A hard budget (key, user or team) has no room for the request's maximum cost.

    429 with OpenAI's ``insufficient_quota`` type, as OpenAI answers an exhausted quota,
    and ``x-should-retry: false`` so that the SDKs do not retry what waiting will not fix."""

    http_status = 429
    kind = "budget_exceeded"
    type = "insufficient_quota"
    default_code = "budget_exceeded"

    def __init__(self, message: str, *, scope: str) -> None:
        super().__init__(message, headers={"x-should-retry": "false"})
        self.scope = scope


class Overloaded(GatewayError):
    http_status = 503
    kind = "overloaded"
    type = "server_error"
    default_code = "overloaded"
    retryable = True


class CoolingDown(Overloaded):
    """Every deployment of a model group is in cooldown; nothing was called."""

    kind = "cooling_down"
    default_code = "deployments_cooling_down"


class UpstreamError(GatewayError):
    http_status = 502
    kind = "upstream"
    type = "server_error"
    default_code = "upstream_error"
    retryable = True


class ProviderAuthError(UpstreamError):
    kind = "provider_auth"
    type = "upstream_auth_error"
    default_code = "provider_auth_failed"
    retryable = False


class Timeout(GatewayError):
    http_status = 504
    kind = "timeout"
    type = "timeout_error"
    default_code = "timeout"
    retryable = True


class AllAttemptsFailed(GatewayError):
    """Every attempt (retries and fallbacks) failed: one error that says why each did.

    Status, type and code are the last failure's, except that a request every provider
    rate-limited is a 429 with the shortest wait any of them asked for.
    """

    def __init__(self, failures: list[tuple[str, GatewayError]]) -> None:
        last = failures[-1][1]
        reasons = "; ".join(f"[{where}] {exc.message}" for where, exc in failures)
        waits = [e.retry_after for _, e in failures if e.retry_after is not None]
        every_rate_limited = all(isinstance(e, RateLimited) for _, e in failures)
        super().__init__(
            f"All {len(failures)} attempts failed: {reasons}",
            code=last.code,
            status=last.status,
            retry_after=min(waits) if every_rate_limited and waits else None,
            deployment=last.deployment,
        )
        self.failures = failures
        self.kind = last.kind  # type: ignore[misc]
        self.type = last.type  # type: ignore[misc]

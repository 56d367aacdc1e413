"""OpenAI-shaped error responses: the exception the handlers raise and its canned bodies."""

from __future__ import annotations

import orjson

_RATE_LIMIT_DOCS = "Visit https://platform.openai.com/account/rate-limits to learn more."

# status -> (message, type, code) for injected faults, worded as OpenAI words them.
_CANNED: dict[int, tuple[str, str, str | None]] = {
    400: ("Simulated bad request.", "invalid_request_error", None),
    401: ("Simulated authentication failure.", "invalid_request_error", "invalid_api_key"),
    403: ("Simulated permission failure.", "invalid_request_error", "unsupported_country"),
    404: ("Simulated not found.", "invalid_request_error", None),
    408: ("Request timed out.", "timeout", None),
    409: ("Simulated conflict.", "invalid_request_error", None),
    413: ("Request too large.", "invalid_request_error", None),
    422: ("Simulated unprocessable request.", "invalid_request_error", None),
    429: (
        "Rate limit reached for requests (simulated burst). Please try again in 1s. "
        + _RATE_LIMIT_DOCS,
        "requests",
        "rate_limit_exceeded",
    ),
    500: (
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
    ),
    502: ("Bad gateway.", "server_error", None),
    503: ("The server is overloaded or not ready yet.", "server_error", None),
    504: ("Gateway timeout.", "server_error", None),
}


class SimulatedError(Exception):
    """An error answer: status, OpenAI's four error fields and extra response headers."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str | None = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code
        self.headers = headers if headers is not None else {}

    def body(self) -> bytes:
        return orjson.dumps(
            {
                "error": {
                    "message": self.message,
                    "type": self.type,
                    "param": self.param,
                    "code": self.code,
                }
            }
        )


def invalid_request(
    message: str, param: str | None = None, code: str | None = None
) -> SimulatedError:
    return SimulatedError(400, message, "invalid_request_error", param, code)


def injected(status: int) -> SimulatedError:
    """The error a request meets when ``error_rates`` picked ``status`` for it."""
    message, type_, code = _CANNED.get(
        status,
        (
            f"Simulated error {status}.",
            "server_error" if status >= 500 else "invalid_request_error",
            None,
        ),
    )
    headers = {"retry-after": "1", "retry-after-ms": "1000"} if status == 429 else None
    return SimulatedError(status, message, type_, None, code, headers)


def outage() -> SimulatedError:
    return SimulatedError(
        503, "The server is overloaded or not ready yet.", "server_error", None, None
    )


def mask_key(key: str) -> str:
    """Show an API key as OpenAI does in its 401 message: a few characters each side."""
    if len(key) <= 8:
        return "*" * len(key)
    return f"{key[:3]}{'*' * (len(key) - 7)}{key[-4:]}"


def bad_api_key(given: str | None) -> SimulatedError:
    if not given:
        return SimulatedError(
            401,
            "You didn't provide an API key. You need to provide your API key in an"
            " Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            "invalid_request_error",
            None,
            None,
        )
    return SimulatedError(
        401,
        f"Incorrect API key provided: {mask_key(given)}. You can find your API key at"
        " https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        None,
        "invalid_api_key",
    )


def model_not_found(model: str) -> SimulatedError:
    return SimulatedError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        "invalid_request_error",
        None,
        "model_not_found",
    )


def context_length_exceeded(window: int, prompt: int, completion: int | None) -> SimulatedError:
    if completion is None:
        detail = f"However, your messages resulted in {prompt} tokens."
        advice = "Please reduce the length of the messages."
    else:
        detail = (
            f"However, you requested {prompt + completion} tokens ({prompt} in the messages,"
            f" {completion} in the completion)."
        )
        advice = "Please reduce the length of the messages or completion."
    return SimulatedError(
        400,
        f"This model's maximum context length is {window} tokens. {detail} {advice}",
        "invalid_request_error",
        "messages",
        "context_length_exceeded",
    )


def content_filtered() -> SimulatedError:
    return SimulatedError(
        400,
        "The response was filtered due to the prompt triggering OpenAI's content management"
        " policy. Please modify your prompt and retry.",
        "invalid_request_error",
        "prompt",
        "content_filter",
    )


def rate_limited(
    model: str, kind: str, limit: int, used: int, requested: int, wait_s: float
) -> SimulatedError:
    """429 for an exhausted RPM (``kind="requests"``) or TPM (``kind="tokens"``) budget."""
    unit = "requests per min (RPM)" if kind == "requests" else "tokens per min (TPM)"
    if requested > limit:
        message = (
            f"Request too large for {model} on {unit}: Limit {limit}, Requested {requested}."
            " The input or output tokens must be reduced in order to run successfully. "
            + _RATE_LIMIT_DOCS
        )
    else:
        message = (
            f"Rate limit reached for {model} in organization org-simulator on {unit}:"
            f" Limit {limit}, Used {used}, Requested {requested}."
            f" Please try again in {wait_s:.3g}s. " + _RATE_LIMIT_DOCS
        )
    return SimulatedError(429, message, kind, None, "rate_limit_exceeded")

"""AWS Bedrock's wire: Converse, ConverseStream (AWS event stream) and Titan embeddings.

Routes: `POST /model/{modelId}/converse`, `/converse-stream` and `/invoke` (Titan Text
Embeddings' body). The credential is the access key id in the SigV4 `Authorization`
header, which must be well formed (algorithm, a `Credential=` scope for the bedrock
service, `SignedHeaders=` with host and x-amz-date, a hex `Signature=`) and dated by
`X-Amz-Date`; with the `secret_key` option the signature itself is recomputed with
botocore and checked (`sigv4.py`). Errors are `{"message": ...}` with the type in
`x-amzn-ErrorType`. A prompt the content filter catches is refused with a
ValidationException, the way Amazon's own models refuse it ("blocked by our content
filters").
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import orjson
from aiohttp import web

from lockgate.providers.simulator import embeddings, sigv4
from lockgate.providers.simulator.bedrock_request import chat_body_from_converse, embed_body
from lockgate.providers.simulator.errors import SimulatedError
from lockgate.providers.simulator.eventstream import event
from lockgate.providers.simulator.openai_wire import ChatPlan
from lockgate.providers.simulator.stream_wire import Frame
from lockgate.providers.simulator.wire import OpenAIWire, Route

_MODEL = r"/model/(?P<model>.+)"
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)"
    r"/(?P<service>[a-z0-9-]+)/aws4_request,\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),"
    r"\s*Signature=(?P<signature>[0-9a-f]{64})"
)
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
# status -> (error type, message) as Bedrock words them.
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("ValidationException", ""),
    401: ("UnrecognizedClientException", "The security token included in the request is invalid."),
    403: (
        "AccessDeniedException",
        "You don't have access to the model with the specified model ID.",
    ),
    404: ("ResourceNotFoundException", "The requested resource could not be found."),
    408: ("ModelTimeoutException", "Model has timed out in processing the request."),
    424: ("ModelErrorException", "The model encountered an error processing the request."),
    429: ("ThrottlingException", "Too many requests, please wait before trying again."),
    500: ("InternalServerException", "The server encountered an internal error."),
    503: ("ServiceUnavailableException", "The service is unavailable. Please try again later."),
}
CONTENT_FILTERED = (
    "This request has been blocked by our content filters. Please adjust your prompt and try again."
)
CONTEXT_TOO_LONG = "Input is too long for requested model."


def signature_parts(request: web.BaseRequest) -> dict[str, str] | None:
    """The SigV4 Authorization header's parts, or None when it is missing or malformed."""
    found = _AUTHORIZATION.fullmatch(request.headers.get("Authorization", "").strip())
    if found is None or found["service"] != "bedrock":
        return None
    signed = found["signed"].split(";")
    stamp = request.headers.get("X-Amz-Date", "")
    if "host" not in signed or "x-amz-date" not in signed or stamp[:8] != found["date"]:
        return None
    return found.groupdict()


def _groups(pieces: tuple[str, ...], chunks: int | None) -> list[str]:
    count = len(pieces) if chunks is None else max(1, min(chunks, len(pieces)))
    size, extra = divmod(len(pieces), count)
    out, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        out.append("".join(pieces[start:end]))
        start = end
    return out


def _usage(plan: ChatPlan) -> dict[str, int]:
    output = len(plan.choices[0].pieces) if plan.choices else 0
    return {
        "inputTokens": plan.prompt_tokens,
        "outputTokens": output,
        "totalTokens": plan.prompt_tokens + output,
    }


class BedrockWire(OpenAIWire):
    name = "bedrock"
    routes = (
        Route(re.compile(_MODEL + r"/converse"), "chat", stream=False),
        Route(re.compile(_MODEL + r"/converse-stream"), "chat", stream=True),
        Route(re.compile(_MODEL + r"/invoke"), "embed"),
    )
    stream_content_type = "application/vnd.amazon.eventstream"

    def credential(self, request: web.BaseRequest) -> str:
        parts = signature_parts(request)
        return parts["key"] if parts is not None else ""

    def verify(self, request: web.BaseRequest, body: bytes, secret: str) -> None:
        parts = signature_parts(request)
        problem = "Missing or malformed Authorization header." if parts is None else None
        if parts is not None:
            problem = sigv4.check(request, body, parts, secret)
        if problem is not None:
            raise SimulatedError(403, problem, "InvalidSignatureException", code="bad_signature")

    def chat_request(
        self, body: Any, params: dict[str, str], route: Route, request: web.BaseRequest
    ) -> Any:
        return chat_body_from_converse(body, params["model"], bool(route.stream))

    def embed_request(self, body: Any, params: dict[str, str], request: web.BaseRequest) -> Any:
        return embed_body(body, params["model"])

    def chat_body(self, plan: ChatPlan, completion_id: str, created: int) -> bytes:
        choice = plan.choices[0]
        call = choice.tool_call
        if call is not None:
            tool = {"toolUseId": call.id, "name": call.name, "input": orjson.loads(call.arguments)}
            content: list[dict[str, Any]] = [{"toolUse": tool}]
        else:
            content = [{"text": choice.text}]
        return orjson.dumps(
            {
                "output": {"message": {"role": "assistant", "content": content}},
                "stopReason": _STOP_REASONS.get(choice.finish_reason, "end_turn"),
                "usage": _usage(plan),
                "metrics": {"latencyMs": 0},
            }
        )

    def chat_frames(
        self, plan: ChatPlan, completion_id: str, created: int, chunks: int | None
    ) -> list[Frame]:
        choice = plan.choices[0]
        call = choice.tool_call
        frames = [Frame(event("messageStart", b'{"role":"assistant"}'), False)]
        if call is not None:
            start = {"start": {"toolUse": {"toolUseId": call.id, "name": call.name}}}
            frames.append(
                Frame(
                    event("contentBlockStart", orjson.dumps({**start, "contentBlockIndex": 0})),
                    False,
                )
            )
        for i, group in enumerate(_groups(choice.pieces, chunks)):
            delta = {"toolUse": {"input": group}} if call is not None else {"text": group}
            payload = orjson.dumps({"delta": delta, "contentBlockIndex": 0})
            frames.append(Frame(event("contentBlockDelta", payload), i > 0))
        stop = _STOP_REASONS.get(choice.finish_reason, "end_turn")
        frames += [
            Frame(event("contentBlockStop", b'{"contentBlockIndex":0}'), False),
            Frame(event("messageStop", orjson.dumps({"stopReason": stop})), False),
            Frame(
                event(
                    "metadata", orjson.dumps({"usage": _usage(plan), "metrics": {"latencyMs": 0}})
                ),
                False,
            ),
        ]
        return frames

    def last_cut(self, plan: ChatPlan, frames: list[Frame]) -> int:
        return len(frames) - 2  # a cut there loses messageStop: the answer never ends

    def embed_body(self, plan: embeddings.EmbeddingPlan) -> bytes:
        values, _ = embeddings.vector(plan.inputs[0], plan.dimensions)
        return orjson.dumps(
            {
                "embedding": values,
                "embeddingsByType": {"float": values},
                "inputTextTokenCount": plan.prompt_tokens,
            }
        )

    def error(self, exc: SimulatedError) -> tuple[int, bytes, dict[str, str]]:
        status = exc.status
        if exc.code == "bad_signature":
            kind, message = "InvalidSignatureException", exc.message
        elif exc.code == "content_filter":
            kind, message = "ValidationException", CONTENT_FILTERED
        elif exc.code == "context_length_exceeded":
            kind, message = "ValidationException", CONTEXT_TOO_LONG
        elif status == 401:  # a bad or missing key: Bedrock says 403 to unknown credentials
            status, (kind, message) = 403, _ERRORS[401]
        else:
            fallback = ("InternalServerException" if status >= 500 else "ValidationException", "")
            kind, message = _ERRORS.get(status, fallback)
        headers = {
            **exc.headers,
            "x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/",
            "x-amzn-RequestId": str(uuid.uuid4()),
        }
        return status, orjson.dumps({"message": message or exc.message}), headers

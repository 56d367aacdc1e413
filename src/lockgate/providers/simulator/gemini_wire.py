"""Gemini API wire format for the simulator: `models/{model}:generateContent`,
`:streamGenerateContent?alt=sse`, `:batchEmbedContents`, `:embedContent`, keyed by
`x-goog-api-key` (or `?key=`), with Google's response, stream and error shapes.

A prompt the content filter catches is no error on Gemini: it is a 200 whose
`promptFeedback.blockReason` is SAFETY and which has no candidates (an SSE event when
streaming); a context window overflow is a 400 INVALID_ARGUMENT in Gemini's words; a 429 is
RESOURCE_EXHAUSTED with the wait in a `google.rpc.RetryInfo` detail, not in headers.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from typing import Any

import orjson
from aiohttp import web

from lockgate.providers.simulator import embeddings
from lockgate.providers.simulator.errors import SimulatedError
from lockgate.providers.simulator.gemini_requests import chat_body, embed_inputs, invalid_argument
from lockgate.providers.simulator.openai_wire import ChatPlan, ChoicePlan
from lockgate.providers.simulator.stream_wire import Frame
from lockgate.providers.simulator.wire import OpenAIWire, Route

_MODEL = r"(?:/v1beta|/v1)/models/(?P<model>[^/:]+)"
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
# Injected faults, worded as the Gemini API words them.
_CANNED = {
    400: "Request contains an invalid argument.",
    401: "Request had invalid authentication credentials. Expected OAuth 2 access token,"
    " login cookie or other valid authentication credential.",
    403: "Method doesn't allow unregistered callers (callers without established identity)."
    " Please use API Key or other form of API consumer identity to call this API.",
    404: "Requested entity was not found.",
    429: "You exceeded your current quota, please check your plan and billing details. For"
    " more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
    500: "An internal error has occurred. Please retry or report in"
    " https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "The request timed out. Please try again.",
}
_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}
_WINDOW = re.compile(r"maximum context length is (\d+) tokens")
_PROMPT = re.compile(r"resulted in (\d+) tokens|requested (\d+) tokens")
_MODEL_NAME = re.compile(r"`([^`]*)`")
# Whether the request being served streams: a blocked prompt is answered as an SSE event
# then. Each request is served in its own task, so the value never leaks between requests.
_STREAMING: ContextVar[bool] = ContextVar("gemini_streaming", default=False)


def _blocked(stream: bool) -> tuple[int, bytes, dict[str, str]]:
    ratings = [
        {"category": f"HARM_CATEGORY_{name}", "probability": level}
        for name, level in (
            ("SEXUALLY_EXPLICIT", "NEGLIGIBLE"),
            ("HATE_SPEECH", "NEGLIGIBLE"),
            ("HARASSMENT", "MEDIUM"),
            ("DANGEROUS_CONTENT", "NEGLIGIBLE"),
        )
    ]
    body = orjson.dumps({"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": ratings}})
    if stream:
        return 200, b"data: " + body + b"\r\n\r\n", {"Content-Type": "text/event-stream"}
    return 200, body, {}


def _usage(plan: ChatPlan, completion: int | None) -> dict[str, Any]:
    prompt = plan.prompt_tokens
    meta: dict[str, Any] = {"promptTokenCount": prompt}
    if completion is not None:
        meta["candidatesTokenCount"] = completion
    meta["totalTokenCount"] = prompt + (completion or 0)
    meta["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    if completion is not None:
        meta["candidatesTokensDetails"] = [{"modality": "TEXT", "tokenCount": completion}]
    return meta


def _parts(choice: ChoicePlan, pieces: tuple[str, ...]) -> list[dict[str, Any]]:
    call = choice.tool_call
    if call is not None:
        return [{"functionCall": {"name": call.name, "args": orjson.loads(call.arguments)}}]
    return [{"text": "".join(pieces)}]


def _candidate(index: int, parts: list[dict[str, Any]], finish: str | None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
    if finish is not None:
        candidate["finishReason"] = _FINISH.get(finish, "STOP")
    if index:  # proto3 JSON leaves out a zero index, as Gemini's answers show
        candidate["index"] = index
    return candidate


def _runs(choice: ChoicePlan, chunks: int | None) -> list[tuple[str, ...]]:
    """The pieces each event carries: one token an event (or ``chunks`` events), and a
    function call whole, in one event, as Gemini sends it."""
    pieces = choice.pieces
    if choice.tool_call is not None or not pieces:
        return [pieces]
    count = len(pieces) if chunks is None else max(1, min(chunks, len(pieces)))
    size, extra = divmod(len(pieces), count)
    runs, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        runs.append(pieces[start:end])
        start = end
    return runs


class GeminiWire(OpenAIWire):
    name = "gemini"
    routes: tuple[Route, ...] = (
        Route(re.compile(_MODEL + r":generateContent"), "chat", stream=False),
        Route(re.compile(_MODEL + r":streamGenerateContent"), "chat", stream=True),
        Route(re.compile(_MODEL + r":batchEmbedContents"), "embed"),
    )
    stream_content_type = "text/event-stream"

    def credential(self, request: web.BaseRequest) -> str:
        return request.headers.get("x-goog-api-key") or request.query.get("key", "")

    def chat_request(
        self, body: Any, params: dict[str, str], route: Route, request: web.BaseRequest
    ) -> Any:
        stream = route.stream is True
        _STREAMING.set(stream)
        if stream and request.query.get("alt") != "sse":
            raise invalid_argument(
                "The simulator streams Gemini answers as server-sent events only: add ?alt=sse."
            )
        return chat_body(body, params["model"], stream)

    def embed_request(self, body: Any, params: dict[str, str], request: web.BaseRequest) -> Any:
        return embed_inputs(body, params["model"], single=False)

    def chat_body(self, plan: ChatPlan, completion_id: str, created: int) -> bytes:
        candidates = [
            _candidate(i, _parts(c, c.pieces), c.finish_reason) for i, c in enumerate(plan.choices)
        ]
        return orjson.dumps(
            {
                "candidates": candidates,
                "usageMetadata": _usage(plan, plan.completion_tokens),
                "modelVersion": plan.model,
                "responseId": completion_id,
            }
        )

    def chat_frames(
        self, plan: ChatPlan, completion_id: str, created: int, chunks: int | None
    ) -> list[Frame]:
        runs = [_runs(choice, chunks) for choice in plan.choices]
        steps = max(len(r) for r in runs)
        frames: list[Frame] = []
        for step in range(steps):
            candidates = []
            for index, (choice, pieces) in enumerate(zip(plan.choices, runs, strict=True)):
                if step < len(pieces):
                    last = step == len(pieces) - 1
                    finish = choice.finish_reason if last else None
                    candidates.append(_candidate(index, _parts(choice, pieces[step]), finish))
            final = step == steps - 1
            event = {
                "candidates": candidates,
                "usageMetadata": _usage(plan, plan.completion_tokens if final else None),
                "modelVersion": plan.model,
                "responseId": completion_id,
            }
            frames.append(Frame(b"data: " + orjson.dumps(event) + b"\r\n\r\n", step > 0))
        return frames

    def last_cut(self, plan: ChatPlan, frames: list[Frame]) -> int:
        return len(frames) - 1  # the last event carries the finishReason

    def embed_body(self, plan: embeddings.EmbeddingPlan) -> bytes:
        vectors = [embeddings.vector(key, plan.dimensions)[0] for key in plan.inputs]
        return orjson.dumps({"embeddings": [{"values": v} for v in vectors]})

    def error(self, exc: SimulatedError) -> tuple[int, bytes, dict[str, str]]:
        if exc.code == "content_filter":
            return _blocked(_STREAMING.get())
        status, message, details = self._describe(exc)
        err: dict[str, Any] = {"code": status, "message": message, "status": _STATUS.get(status)}
        if err["status"] is None:
            err["status"] = "INTERNAL" if status >= 500 else "FAILED_PRECONDITION"
        if details:
            err["details"] = details
        return status, orjson.dumps({"error": err}), {}

    def _describe(self, exc: SimulatedError) -> tuple[int, str, list[dict[str, Any]]]:
        """Status, message and details of the Gemini error for a simulated failure."""
        if exc.type == "INVALID_ARGUMENT":  # raised by the Gemini request checks
            return 400, exc.message, []
        if exc.code == "context_length_exceeded":
            window = _WINDOW.search(exc.message)
            asked = _PROMPT.search(exc.message)
            tokens = next((g for g in asked.groups() if g), "0") if asked else "0"
            limit = window.group(1) if window else "0"
            return (
                400,
                f"The input token count ({tokens}) exceeds the maximum number of tokens"
                f" allowed ({limit}).",
                [],
            )
        if exc.status == 401 and exc.message.startswith("You didn't provide an API key"):
            return 403, _CANNED[403], []
        if exc.status == 401 and exc.message.startswith("Incorrect API key"):
            message = "API key not valid. Please pass a valid API key."
            info = {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
            return 400, message, [info]
        if exc.code == "model_not_found":
            found = _MODEL_NAME.search(exc.message)
            model = found.group(1) if found else ""
            return (
                404,
                f"models/{model} is not found for API version v1beta, or is not supported for"
                " generateContent. Call ListModels to see the list of available models and"
                " their supported methods.",
                [],
            )
        if exc.status == 429:
            return 429, _CANNED[429], _quota_details(exc.headers)
        if exc.status == 400 and exc.code is not None:
            return 400, exc.message, []  # the planner's own checks, in its words
        return exc.status, _CANNED.get(exc.status, exc.message), []


def _quota_details(headers: dict[str, str]) -> list[dict[str, Any]]:
    wait_ms = headers.get("retry-after-ms")
    seconds = int(wait_ms) / 1000 if wait_ms and wait_ms.isdigit() else 1.0
    return [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                    "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                }
            ],
        },
        {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [
                {
                    "description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                }
            ],
        },
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{seconds:g}s"},
    ]


class GeminiEmbedContentWire(GeminiWire):
    """`:embedContent`, one text: the same wire, answering `{"embedding": {...}}`."""

    routes: tuple[Route, ...] = (Route(re.compile(_MODEL + r":embedContent"), "embed"),)

    def embed_request(self, body: Any, params: dict[str, str], request: web.BaseRequest) -> Any:
        return embed_inputs(body, params["model"], single=True)

    def embed_body(self, plan: embeddings.EmbeddingPlan) -> bytes:
        values = embeddings.vector(plan.inputs[0], plan.dimensions)[0]
        return orjson.dumps({"embedding": {"values": values}})

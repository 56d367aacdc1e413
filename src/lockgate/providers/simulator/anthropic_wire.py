"""Anthropic's Messages wire in the simulator: POST /v1/messages, x-api-key, answers,
event streams, errors and rate-limit headers the way api.anthropic.com sends them."""

from __future__ import annotations

import re
import secrets
import string
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

from lockgate.providers.errors import parse_duration
from lockgate.providers.simulator import content
from lockgate.providers.simulator.anthropic_request import openai_body
from lockgate.providers.simulator.errors import SimulatedError, invalid_request
from lockgate.providers.simulator.openai_wire import ChatPlan, ChoicePlan, require_model
from lockgate.providers.simulator.options import SimulatorOptions
from lockgate.providers.simulator.stream_wire import Frame, _groups
from lockgate.providers.simulator.wire import OpenAIWire, Route

VERSION_HEADER = "anthropic-version"
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
# status -> Anthropic's error type, as its errors page lists them.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_CANNED = {
    "overloaded_error": "Overloaded",
    "api_error": "Internal server error",
    "authentication_error": "invalid x-api-key",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "rate_limit_error": "Number of requests has exceeded your rate limit. Please try again later.",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
}
_WINDOW = re.compile(r"maximum context length is (\d+) tokens")
_REQUESTED = re.compile(r"\((\d+) in the messages, (\d+) in the completion\)")
_RESULTED = re.compile(r"resulted in (\d+) tokens")
_ID_ALPHABET = string.ascii_letters + string.digits


def _request_id() -> str:
    return "req_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


def _event(name: str, data: dict[str, Any], paced: bool = False) -> Frame:
    return Frame(b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n", paced)


def _tool_id(call_id: str) -> str:
    return "toolu_" + call_id.removeprefix("call_")


class AnthropicWire(OpenAIWire):
    name = "anthropic"
    routes = (Route(re.compile(r"/v1/messages"), "chat"),)

    def credential(self, request: web.BaseRequest) -> str:
        # x-api-key is Anthropic's header; recent SDKs send the key as a bearer token.
        if "x-api-key" in request.headers:
            return request.headers["x-api-key"]
        return super().credential(request)

    def chat_request(
        self, body: Any, params: dict[str, str], route: Route, request: web.BaseRequest
    ) -> Any:
        if not request.headers.get(VERSION_HEADER):
            raise invalid_request(f"{VERSION_HEADER}: header is required")
        return openai_body(body)

    def refusal(self, exc: SimulatedError, body: Any, options: SimulatorOptions) -> ChatPlan | None:
        """A prompt the content filter catches is answered with a 200 whose stop reason is
        ``refusal`` and whose content is empty, as Claude's safety classifiers answer."""
        if exc.code != "content_filter":
            return None
        body, model = require_model(body, options)
        tools = body.get("tools")
        prompt = content.prompt_tokens(body["messages"], tools or None)
        plan = ChatPlan(model, bool(body.get("stream")), False, prompt, body.get("max_tokens"))
        plan.choices.append(ChoicePlan((), "content_filter"))
        return plan

    # -- answers --------------------------------------------------------------------------

    def _usage(self, plan: ChatPlan, output: int) -> dict[str, Any]:
        return {
            "input_tokens": plan.prompt_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output,
        }

    def _message(self, plan: ChatPlan, completion_id: str) -> dict[str, Any]:
        return {
            "id": f"msg_{completion_id}",
            "type": "message",
            "role": "assistant",
            "model": plan.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
        }

    def chat_body(self, plan: ChatPlan, completion_id: str, created: int) -> bytes:
        choice = plan.choices[0]
        blocks: list[dict[str, Any]] = []
        if choice.tool_call is not None:
            call = choice.tool_call
            blocks.append(
                {
                    "type": "tool_use",
                    "id": _tool_id(call.id),
                    "name": call.name,
                    "input": orjson.loads(call.arguments),
                }
            )
        elif choice.pieces:
            blocks.append({"type": "text", "text": "".join(choice.pieces)})
        message = self._message(plan, completion_id)
        message["content"] = blocks
        message["stop_reason"] = STOP_REASONS[choice.finish_reason]
        message["usage"] = self._usage(plan, plan.completion_tokens)
        return orjson.dumps(message)

    def chat_frames(
        self, plan: ChatPlan, completion_id: str, created: int, chunks: int | None
    ) -> list[Frame]:
        choice = plan.choices[0]
        start = self._message(plan, completion_id)
        start["usage"] = self._usage(plan, 1)
        frames = [_event("message_start", {"type": "message_start", "message": start})]
        if choice.tool_call is not None:
            call = choice.tool_call
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": _tool_id(call.id),
                "name": call.name,
                "input": {},
            }
            delta_type, key, first = "input_json_delta", "partial_json", [""]
        else:
            block = {"type": "text", "text": ""}
            delta_type, key, first = "text_delta", "text", []
        if choice.pieces:
            frames.append(
                _event(
                    "content_block_start",
                    {"type": "content_block_start", "index": 0, "content_block": block},
                )
            )
        frames.append(_event("ping", {"type": "ping"}))
        if choice.pieces:
            texts = first + ["".join(g) for g in _groups(choice.pieces, chunks)]
            for i, text in enumerate(texts):
                delta = {"type": delta_type, key: text}
                frames.append(
                    _event(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": 0, "delta": delta},
                        paced=i > 0,
                    )
                )
            frames.append(_event("content_block_stop", {"type": "content_block_stop", "index": 0}))
        stop = {"stop_reason": STOP_REASONS[choice.finish_reason], "stop_sequence": None}
        frames.append(
            _event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": stop,
                    "usage": {"output_tokens": plan.completion_tokens},
                },
            )
        )
        frames.append(_event("message_stop", {"type": "message_stop"}))
        return frames

    def last_cut(self, plan: ChatPlan, frames: list[Frame]) -> int:
        # Before content_block_stop at the latest: the client sees a message without its end.
        return len(frames) - (3 if plan.choices[0].pieces else 2)

    # -- headers and errors ---------------------------------------------------------------

    def response_headers(self, headers: dict[str, str]) -> dict[str, str]:
        """OpenAI's ``x-ratelimit-*`` headers as Anthropic's ``anthropic-ratelimit-*`` (an
        RFC 3339 reset time), plus the ``request-id`` every Anthropic answer carries."""
        out: dict[str, str] = {"request-id": _request_id()}
        now = datetime.now(UTC)
        for kind in ("requests", "tokens"):
            limit = headers.get(f"x-ratelimit-limit-{kind}")
            if limit is None:
                continue
            reset = parse_duration(headers.get(f"x-ratelimit-reset-{kind}", "0")) or 0.0
            stamp = (now + timedelta(seconds=reset)).replace(microsecond=0)
            out[f"anthropic-ratelimit-{kind}-limit"] = limit
            out[f"anthropic-ratelimit-{kind}-remaining"] = headers[f"x-ratelimit-remaining-{kind}"]
            out[f"anthropic-ratelimit-{kind}-reset"] = stamp.isoformat().replace("+00:00", "Z")
        if "retry-after" in headers:
            out["retry-after"] = headers["retry-after"]
        return out

    def error(self, exc: SimulatedError) -> tuple[int, bytes, dict[str, str]]:
        kind = ERROR_TYPES.get(exc.status)
        if kind is None:
            kind = "api_error" if exc.status >= 500 else "invalid_request_error"
        headers = self.response_headers(exc.headers)
        body = {
            "type": "error",
            "error": {"type": kind, "message": self._message_of(exc, kind)},
            "request_id": headers["request-id"],
        }
        return exc.status, orjson.dumps(body), headers

    def _message_of(self, exc: SimulatedError, kind: str) -> str:
        if exc.code == "context_length_exceeded":
            window = _WINDOW.search(exc.message)
            requested = _REQUESTED.search(exc.message)
            resulted = _RESULTED.search(exc.message)
            if window and requested:
                prompt, cap = requested.groups()
                return (
                    f"input length and `max_tokens` exceed context limit: {prompt} + {cap} >"
                    f" {window.group(1)}, decrease input length or `max_tokens` and try again"
                )
            if window and resulted:
                return f"prompt is too long: {resulted.group(1)} tokens > {window.group(1)} maximum"
        if exc.code == "model_not_found":
            model = exc.message.split("`")[1] if exc.message.count("`") >= 2 else "unknown"
            return f"model: {model}"
        if exc.status == 401:
            return "invalid x-api-key"
        if kind == "invalid_request_error" and exc.status == 400:
            return exc.message  # the validation messages are Anthropic's already
        return _CANNED.get(kind, exc.message)

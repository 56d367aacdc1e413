"""Azure OpenAI's wire: deployment URLs, `api-version`, the `api-key` header, content filters.

Azure speaks OpenAI's Chat Completions and Embeddings formats, with these differences:
the deployment is in the path (`/openai/deployments/{deployment}/chat/completions`) and the
`api-version` query parameter is required there (the v1 surface, `/openai/v1/...`, takes the
deployment name as `model` in the body and needs no version); the key travels in `api-key`;
answers carry content filter annotations (`prompt_filter_results`, per-choice
`content_filter_results`); a filtered prompt is a 400 with `code: content_filter` and the
filter's verdict in `innererror.content_filter_result`.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiohttp import web

from lockgate.providers.simulator.errors import SimulatedError
from lockgate.providers.simulator.openai_wire import ChatPlan
from lockgate.providers.simulator.stream_wire import Frame
from lockgate.providers.simulator.wire import OpenAIWire, Route

_DEPLOYMENT = r"/openai/deployments/(?P<deployment>[^/]+)"
_CATEGORIES = ("hate", "self_harm", "sexual", "violence")


def filter_verdict(filtered: str | None = None) -> dict[str, Any]:
    """A content filter result: every category safe, except ``filtered`` (medium, blocked)."""
    return {
        name: {"filtered": True, "severity": "medium"}
        if name == filtered
        else {"filtered": False, "severity": "safe"}
        for name in _CATEGORIES
    }


def _error(code: str, message: str, **extra: Any) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message, **extra}})


class AzureWire(OpenAIWire):
    name = "azure"
    routes = (
        Route(re.compile(_DEPLOYMENT + r"/chat/completions"), "chat"),
        Route(re.compile(_DEPLOYMENT + r"/embeddings"), "embed"),
        Route(re.compile(r"/openai/v1/chat/completions"), "chat"),
        Route(re.compile(r"/openai/v1/embeddings"), "embed"),
    )

    def credential(self, request: web.BaseRequest) -> str:
        key = request.headers.get("api-key")
        if key is not None:
            return key.strip()
        return super().credential(request)  # the v1 surface also takes `Bearer <key>`

    def _target(self, body: Any, params: dict[str, str], request: web.BaseRequest) -> Any:
        deployment = params.get("deployment")
        if deployment is None:
            return body  # v1: the deployment is the body's `model`
        if not request.query.get("api-version"):
            raise SimulatedError(
                400,
                "The api-version query parameter (?api-version=) is required for all requests.",
                code="MissingApiVersionParameter",
            )
        return {**body, "model": deployment} if isinstance(body, dict) else body

    def chat_request(
        self, body: Any, params: dict[str, str], route: Route, request: web.BaseRequest
    ) -> Any:
        return super().chat_request(self._target(body, params, request), params, route, request)

    def embed_request(self, body: Any, params: dict[str, str], request: web.BaseRequest) -> Any:
        return self._target(body, params, request)

    def chat_body(self, plan: ChatPlan, completion_id: str, created: int) -> bytes:
        data = orjson.loads(super().chat_body(plan, completion_id, created))
        data["prompt_filter_results"] = [
            {"prompt_index": 0, "content_filter_results": filter_verdict()}
        ]
        for choice in data["choices"]:
            choice["content_filter_results"] = filter_verdict()
        return orjson.dumps(data)

    def chat_frames(
        self, plan: ChatPlan, completion_id: str, created: int, chunks: int | None
    ) -> list[Frame]:
        # Azure's first event carries the prompt's filter verdict and no choices.
        head = {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": [
                {"prompt_index": 0, "content_filter_results": filter_verdict()}
            ],
        }
        frames = super().chat_frames(plan, completion_id, created, chunks)
        return [Frame(b"data: " + orjson.dumps(head) + b"\n\n", False), *frames]

    def error(self, exc: SimulatedError) -> tuple[int, bytes, dict[str, str]]:
        if exc.code == "content_filter":
            body = _error(
                "content_filter",
                "The response was filtered due to the prompt triggering Azure OpenAI's content"
                " management policy. Please modify your prompt and retry. To learn more about"
                " our content filtering policies please read our documentation:"
                " https://go.microsoft.com/fwlink/?linkid=2198766",
                param="prompt",
                type=None,
                status=400,
                innererror={
                    "code": "ResponsibleAIPolicyViolation",
                    "content_filter_result": filter_verdict("violence"),
                },
            )
            return 400, body, exc.headers
        if exc.status == 401:
            body = _error(
                "401",
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure"
                " to provide a valid key for an active subscription and use a correct regional"
                " API endpoint for your resource.",
            )
            return 401, body, exc.headers
        if exc.status == 429:
            body = _error(
                "429",
                "Requests to the ChatCompletions_Create Operation under Azure OpenAI API have"
                " exceeded call rate limit of your current pricing tier. Please retry after"
                " 1 second.",
            )
            return 429, body, exc.headers
        if exc.code == "MissingApiVersionParameter":
            body = _error(exc.code, exc.message)
            return 400, body, exc.headers
        return super().error(exc)

"""Wire formats the simulator speaks: routes, credentials, request and answer shapes.

The simulator plans every chat answer once, in OpenAI's shape (`openai_wire.plan_chat`),
and applies the same faults (latency, rate limits, injected errors, outages, broken streams)
whatever the wire. A wire translates a provider's request into that shape and renders the
planned answer, its stream and its errors the way the provider does. OpenAI's wire is the
base class; another provider's wire overrides what differs and is listed in `wires.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from lockgate.providers.simulator import embeddings
from lockgate.providers.simulator.errors import SimulatedError
from lockgate.providers.simulator.openai_wire import ChatPlan, completion_body
from lockgate.providers.simulator.options import SimulatorOptions
from lockgate.providers.simulator.stream_wire import DONE, Frame, stream_frames

Operation = Literal["chat", "embed"]


@dataclass(frozen=True, slots=True)
class Route:
    """A POST path (a full-match regex; named groups become ``params``) and what it does."""

    pattern: re.Pattern[str]
    operation: Operation
    stream: bool | None = None  # the path decides streaming (None: the body's `stream`)


class OpenAIWire:
    name = "openai"
    routes: tuple[Route, ...] = (
        Route(re.compile(r"(?:/v1)?/chat/completions"), "chat"),
        Route(re.compile(r"(?:/v1)?/embeddings"), "embed"),
    )
    stream_content_type = "text/event-stream; charset=utf-8"

    def match(self, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            found = route.pattern.fullmatch(path)
            if found is not None:
                return route, found.groupdict()
        return None

    def credential(self, request: web.BaseRequest) -> str:
        """The API key the request carries ("" for none)."""
        given = request.headers.get("Authorization", "")
        if given[:7].lower() == "bearer ":
            return given[7:].strip()
        return request.headers.get("api-key", "")

    def verify(self, request: web.BaseRequest, body: bytes, secret: str) -> None:
        """Check the request's proof of its credential (a signature over ``body``) with
        ``secret``; raise `SimulatedError` when it fails. Bearer-key wires have none."""

    # -- requests: the provider's shape -> OpenAI's -------------------------------------

    def chat_request(
        self, body: Any, params: dict[str, str], route: Route, request: web.BaseRequest
    ) -> Any:
        """The request as an OpenAI chat body (``plan_chat`` validates it). Raise
        `SimulatedError` for what the provider itself would refuse."""
        if route.stream is not None and isinstance(body, dict):
            return {**body, "stream": route.stream}
        return body

    def embed_request(self, body: Any, params: dict[str, str], request: web.BaseRequest) -> Any:
        return body

    def refusal(self, exc: SimulatedError, body: Any, options: SimulatorOptions) -> ChatPlan | None:
        """The answer to give instead of ``exc`` (raised while planning ``body``), for a
        provider that answers some refusals with a 200 rather than an error; None: the error."""
        return None

    # -- answers: the planned answer -> the provider's shape -----------------------------

    def chat_body(self, plan: ChatPlan, completion_id: str, created: int) -> bytes:
        return completion_body(plan, f"chatcmpl-{completion_id}", created)

    def chat_frames(
        self, plan: ChatPlan, completion_id: str, created: int, chunks: int | None
    ) -> list[Frame]:
        """Every event of the stream, in order, including its terminator."""
        frames = stream_frames(plan, f"chatcmpl-{completion_id}", created, chunks)
        frames.append(Frame(DONE, False))
        return frames

    def last_cut(self, plan: ChatPlan, frames: list[Frame]) -> int:
        """The last frame index a broken stream may stop before: never after the last
        content frame, so the client sees a stream without its end."""
        return len(frames) - 1 - len(plan.choices) - (1 if plan.include_usage else 0)

    def response_headers(self, headers: dict[str, str]) -> dict[str, str]:
        """The headers of a successful answer, given OpenAI's rate-limit headers."""
        return headers

    def embed_body(self, plan: embeddings.EmbeddingPlan) -> bytes:
        return embeddings.embeddings_body(plan)

    def error(self, exc: SimulatedError) -> tuple[int, bytes, dict[str, str]]:
        """Status, body and extra headers of an error answer."""
        return exc.status, exc.body(), exc.headers

"""Chat Completions streaming: a planned answer rendered as ``chat.completion.chunk`` SSE frames."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from lockgate.providers.simulator import content
from lockgate.providers.simulator.openai_wire import SYSTEM_FINGERPRINT, ChatPlan, ChoicePlan, usage

DONE = b"data: [DONE]\n\n"


@dataclass(slots=True)
class Frame:
    """One SSE event; ``paced`` frames wait one inter-token delay before they are sent."""

    data: bytes
    paced: bool


def _groups(pieces: tuple[str, ...], chunks: int | None) -> list[tuple[str, ...]]:
    """Split the tokens into ``chunks`` nearly equal runs (one token a chunk by default)."""
    total = len(pieces)
    count = total if chunks is None else max(1, min(chunks, total))
    size, extra = divmod(total, count)
    groups: list[tuple[str, ...]] = []
    start = 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        groups.append(pieces[start:end])
        start = end
    return groups


def _choice_deltas(
    plan: ChatPlan, choice: ChoicePlan, chunks: int | None
) -> list[tuple[dict[str, Any], Any, str | None]]:
    """(delta, logprobs, finish_reason) for each chunk of one choice, role first."""
    call = choice.tool_call
    deltas: list[tuple[dict[str, Any], Any, str | None]] = []
    if call is not None:
        first: dict[str, Any] = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "index": 0,
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": ""},
                }
            ],
            "refusal": None,
        }
        deltas.append((first, None, None))
        for group in _groups(choice.pieces, chunks):
            piece = {"index": 0, "function": {"arguments": "".join(group)}}
            deltas.append(({"tool_calls": [piece]}, None, None))
    else:
        deltas.append(({"role": "assistant", "content": "", "refusal": None}, None, None))
        for group in _groups(choice.pieces, chunks):
            logprobs = None
            if plan.logprobs:
                entries = content.logprob_entries(group, plan.top_logprobs)
                logprobs = {"content": entries, "refusal": None}
            deltas.append(({"content": "".join(group)}, logprobs, None))
    deltas.append(({}, None, choice.finish_reason))
    return deltas


def stream_frames(
    plan: ChatPlan, completion_id: str, created: int, chunks: int | None
) -> list[Frame]:
    """Every frame of the stream except ``[DONE]``: choices interleaved step by step (as
    OpenAI sends them when ``n > 1``), then the usage chunk if ``include_usage``."""
    head: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": plan.model,
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    per_choice = [_choice_deltas(plan, choice, chunks) for choice in plan.choices]
    frames: list[Frame] = []
    steps = max(len(d) for d in per_choice)
    for step in range(steps):
        for index, deltas in enumerate(per_choice):
            if step >= len(deltas):
                continue
            delta, logprobs, finish = deltas[step]
            chunk = dict(head)
            chunk["choices"] = [
                {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
            ]
            if plan.include_usage:
                chunk["usage"] = None
            paced = index == 0 and 2 <= step < len(deltas) - 1
            frames.append(Frame(b"data: " + orjson.dumps(chunk) + b"\n\n", paced))
    if plan.include_usage:
        chunk = dict(head)
        chunk["choices"] = []
        chunk["usage"] = usage(plan)
        frames.append(Frame(b"data: " + orjson.dumps(chunk) + b"\n\n", False))
    return frames

"""Bedrock requests as the simulator's OpenAI-shaped bodies: Converse -> chat, Titan
embeddings -> embeddings. What Bedrock itself refuses is a ValidationException (400)."""

from __future__ import annotations

from typing import Any

import orjson

from lockgate.providers.simulator.errors import SimulatedError


def _invalid(message: str) -> SimulatedError:
    return SimulatedError(400, message, "ValidationException")


def _text_of(blocks: Any) -> str:
    parts: list[str] = []
    for block in blocks if isinstance(blocks, list) else ():
        if isinstance(block, dict):
            if isinstance(block.get("text"), str):
                parts.append(block["text"])
            elif "json" in block:
                parts.append(orjson.dumps(block["json"]).decode())
    return " ".join(parts)


def _user(blocks: list[Any]) -> list[dict[str, Any]]:
    """A Converse user turn: its tool results as `tool` messages, then the rest."""
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in blocks:
        if not isinstance(block, dict):
            raise _invalid("A content block must be an object.")
        if isinstance(block.get("toolResult"), dict):
            result = block["toolResult"]
            content = _text_of(result.get("content"))
            out.append(
                {"role": "tool", "tool_call_id": result.get("toolUseId"), "content": content}
            )
        elif isinstance(block.get("text"), str):
            parts.append({"type": "text", "text": block["text"]})
        elif isinstance(block.get("image"), dict):
            image = block["image"]
            source = image.get("source") or {}
            data = source.get("bytes") if isinstance(source, dict) else None
            if not isinstance(data, str) or image.get("format") not in (
                "png",
                "jpeg",
                "gif",
                "webp",
            ):
                raise _invalid("The provided image is invalid: give a format and source.bytes.")
            url = f"data:image/{image['format']};base64,{data}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
        else:
            raise _invalid(f"Unsupported content block: {', '.join(block) or 'empty'}.")
    if parts:
        out.append({"role": "user", "content": parts})
    return out


def _assistant(blocks: list[Any]) -> dict[str, Any]:
    calls = [
        {
            "id": b["toolUse"].get("toolUseId"),
            "type": "function",
            "function": {
                "name": b["toolUse"].get("name"),
                "arguments": orjson.dumps(b["toolUse"].get("input", {})).decode(),
            },
        }
        for b in blocks
        if isinstance(b, dict) and isinstance(b.get("toolUse"), dict)
    ]
    message: dict[str, Any] = {"role": "assistant", "content": _text_of(blocks) or None}
    if calls:
        message["tool_calls"] = calls
    return message


def _tools(config: Any) -> dict[str, Any]:
    if not isinstance(config, dict):
        return {}
    tools = [
        {
            "type": "function",
            "function": {
                "name": t["toolSpec"].get("name"),
                "description": t["toolSpec"].get("description", ""),
                "parameters": (t["toolSpec"].get("inputSchema") or {}).get("json", {}),
            },
        }
        for t in config.get("tools") or ()
        if isinstance(t, dict) and isinstance(t.get("toolSpec"), dict)
    ]
    out: dict[str, Any] = {"tools": tools}
    choice = config.get("toolChoice")
    if isinstance(choice, dict) and "any" in choice:
        out["tool_choice"] = "required"
    elif isinstance(choice, dict) and isinstance(choice.get("tool"), dict):
        out["tool_choice"] = {"type": "function", "function": {"name": choice["tool"].get("name")}}
    return out


def chat_body_from_converse(body: Any, model: str, stream: bool) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object.")
    turns = body.get("messages")
    if not isinstance(turns, list) or not turns:
        raise _invalid("The messages field is required and must not be empty.")
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": block["text"]}
        for block in body.get("system") or ()
        if isinstance(block, dict) and isinstance(block.get("text"), str)
    ]
    previous = None
    for turn in turns:
        role = turn.get("role") if isinstance(turn, dict) else None
        blocks = turn.get("content") if isinstance(turn, dict) else None
        if role not in ("user", "assistant") or not isinstance(blocks, list) or not blocks:
            raise _invalid("Each message needs a role (user or assistant) and content blocks.")
        if role == previous:
            raise _invalid(
                "A conversation must alternate between user and assistant roles. Make sure the"
                " conversation alternates between user and assistant roles and try again."
            )
        previous = role
        messages.extend(_user(blocks) if role == "user" else [_assistant(blocks)])
    if turns[0].get("role") != "user":
        raise _invalid(
            "A conversation must start with a user message. Try again with a"
            " conversation that starts with a user message."
        )
    out: dict[str, Any] = {"model": model, "messages": messages, "stream": stream}
    if stream:
        out["stream_options"] = {"include_usage": True}
    inference = body.get("inferenceConfig")
    if isinstance(inference, dict):
        for theirs, ours in (
            ("maxTokens", "max_tokens"),
            ("temperature", "temperature"),
            ("topP", "top_p"),
            ("stopSequences", "stop"),
        ):
            if theirs in inference:
                out[ours] = inference[theirs]
    out.update(_tools(body.get("toolConfig")))
    return out


def embed_body(body: Any, model: str) -> dict[str, Any]:
    """A Titan Text Embeddings body (`inputText`, optional `dimensions`) as an OpenAI one."""
    if not isinstance(body, dict) or not isinstance(body.get("inputText"), str):
        raise _invalid("Malformed input request: required key [inputText] not found.")
    out: dict[str, Any] = {"model": model, "input": body["inputText"]}
    if body.get("dimensions") is not None:
        out["dimensions"] = body["dimensions"]
    return out

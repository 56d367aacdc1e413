"""Anthropic Messages requests in the simulator: validate as Anthropic does, then translate
into the OpenAI chat body the planner understands.

The checks are Anthropic's main ones, worded as its API words them: required fields and
their types, roles, content block types, image sources, tools and tool_choice, and every
``tool_use`` answered by a ``tool_result`` in the next turn. Consecutive turns of one role
are combined into one, as Anthropic's reference says the API does.
"""

from __future__ import annotations

from typing import Any

import orjson

from lockgate.providers.simulator.errors import SimulatedError, invalid_request

IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_BLOCKS = {
    "user": ("text", "image", "document", "tool_result"),
    "assistant": ("text", "tool_use", "thinking", "redacted_thinking"),
}
_TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def bad(message: str) -> SimulatedError:
    return invalid_request(message)


def openai_body(body: Any) -> dict[str, Any]:
    """The OpenAI chat body for a valid Messages request; raise `SimulatedError` otherwise."""
    if not isinstance(body, dict):
        raise bad("Input should be a valid dictionary")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("model: Field required" if model is None else "model: Input should be a string")
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise bad("max_tokens: Field required")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise bad("max_tokens: Input should be a valid integer")
    if max_tokens < 1:
        raise bad("max_tokens: Input should be greater than or equal to 1")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad("stream: Input should be a valid boolean")
    messages = _messages(body.get("messages"))
    out: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens,
        "stream": stream,
        "messages": [*_system(body.get("system")), *_openai_messages(messages)],
    }
    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
    choice = _tool_choice(body.get("tool_choice"), tools)
    if choice is not None:
        out["tool_choice"] = choice
    return out


def _messages(messages: Any) -> list[dict[str, Any]]:
    if messages is None:
        raise bad("messages: Field required")
    if not isinstance(messages, list):
        raise bad("messages: Input should be a valid list")
    if not messages:
        raise bad("messages: at least one message is required")
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise bad(f"messages.{i}: Input should be a valid dictionary")
        role = message.get("role")
        if role not in _BLOCKS:
            if role == "system":
                raise bad(
                    'messages: Unexpected role "system". The Messages API accepts a top-level'
                    ' `system` parameter, not "system" as an input message role.'
                )
            raise bad(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        blocks = _blocks(message.get("content"), role, f"messages.{i}.content")
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    _check_tool_pairs(turns)
    return turns


def _blocks(content: Any, role: str, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        if not content:
            raise bad(f"{where}: text content blocks must be non-empty")
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise bad(f"{where}: Input should be a valid list")
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in _BLOCKS[role]:
            raise bad(
                f"{where}.{j}.type: Input tag {kind!r} found using 'type' does not match any"
                f" of the expected tags: {', '.join(repr(t) for t in _BLOCKS[role])}"
            )
        if kind == "text" and not isinstance(block.get("text"), str):
            raise bad(f"{where}.{j}.text: Field required")
        if kind == "image":
            _image_source(block.get("source"), f"{where}.{j}.source")
        if kind == "tool_use" and not (
            isinstance(block.get("id"), str)
            and isinstance(block.get("name"), str)
            and isinstance(block.get("input"), dict)
        ):
            raise bad(f"{where}.{j}: tool_use blocks need an id, a name and an input object")
        if kind == "tool_result" and not isinstance(block.get("tool_use_id"), str):
            raise bad(f"{where}.{j}.tool_use_id: Field required")
    return list(content)


def _image_source(source: Any, where: str) -> None:
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64":
        if source.get("media_type") not in IMAGE_TYPES:
            raise bad(
                f"{where}.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif'"
                " or 'image/webp'"
            )
        if not isinstance(source.get("data"), str) or not source["data"]:
            raise bad(f"{where}.data: Field required")
    elif kind == "url":
        if not isinstance(source.get("url"), str):
            raise bad(f"{where}.url: Field required")
    else:
        raise bad(f"{where}: Input tag {kind!r} found using 'type' does not match any of the"
                  " expected tags: 'base64', 'url', 'file'")  # fmt: skip


def _check_tool_pairs(turns: list[dict[str, Any]]) -> None:
    for i, turn in enumerate(turns):
        asked = [b["id"] for b in turn["content"] if b.get("type") == "tool_use"]
        following = turns[i + 1]["content"] if i + 1 < len(turns) else None
        if turn["role"] == "assistant" and asked and following is not None:
            answered = {b["tool_use_id"] for b in following if b.get("type") == "tool_result"}
            missing = [a for a in asked if a not in answered]
            if missing:
                raise bad(
                    f"messages.{i}: `tool_use` ids were found without `tool_result` blocks"
                    f" immediately after: {', '.join(missing)}. Each `tool_use` block must have"
                    " a corresponding `tool_result` block in the next message."
                )
        if turn["role"] == "user":
            previous = turns[i - 1]["content"] if i > 0 else []
            known = {b.get("id") for b in previous if b.get("type") == "tool_use"}
            for j, block in enumerate(turn["content"]):
                if block.get("type") == "tool_result" and block["tool_use_id"] not in known:
                    raise bad(
                        f"messages.{i}.content.{j}: unexpected `tool_use_id` found in"
                        f" `tool_result` blocks: {block['tool_use_id']}. Each `tool_result`"
                        " block must have a corresponding `tool_use` block in the previous"
                        " message."
                    )


def _system(system: Any) -> list[dict[str, Any]]:
    if system is None:
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}] if system else []
    if isinstance(system, list) and all(
        isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        for b in system
    ):
        return [{"role": "system", "content": "\n\n".join(b["text"] for b in system)}]
    raise bad("system: Input should be a valid string or a list of text blocks")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(b["text"] for b in content if isinstance(b, dict) and "text" in b)
    return ""


def _openai_messages(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for turn in turns:
        blocks = turn["content"]
        if turn["role"] == "assistant":
            calls = [
                {
                    "id": b["id"],
                    "type": "function",
                    "function": {"name": b["name"], "arguments": orjson.dumps(b["input"]).decode()},
                }
                for b in blocks
                if b["type"] == "tool_use"
            ]
            message: dict[str, Any] = {"role": "assistant", "content": _text(blocks) or None}
            if calls:
                message["tool_calls"] = calls
            out.append(message)
            continue
        for b in blocks:
            if b["type"] == "tool_result":
                out.append(
                    {
                        "role": "tool",
                        "tool_call_id": b["tool_use_id"],
                        "content": _text(b.get("content")),
                    }
                )
        parts: list[dict[str, Any]] = []
        for b in blocks:
            if b["type"] == "text":
                parts.append({"type": "text", "text": b["text"]})
            elif b["type"] == "image":
                source = b["source"]
                url = source.get("url") or f"data:{source['media_type']};base64,{source['data']}"
                parts.append({"type": "image_url", "image_url": {"url": url}})
        if parts:
            out.append({"role": "user", "content": parts})
    return out


def _tools(tools: Any) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise bad("tools: Input should be a valid list")
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise bad(f"tools.{i}.name: Field required")
        if "type" in tool and tool["type"] != "custom":
            continue  # Anthropic's server tools (web search...): nothing to simulate
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise bad(f"tools.{i}.custom.input_schema: Field required")
        function = {"name": tool["name"], "parameters": schema}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any, tools: list[dict[str, Any]]) -> Any:
    if choice is None:
        return None
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind in _TOOL_CHOICES:
        return _TOOL_CHOICES[kind]
    if kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str):
            raise bad("tool_choice.tool.name: Field required")
        if name not in {t["function"]["name"] for t in tools}:
            raise bad(f"tool_choice: Tool '{name}' not found in provided tools")
        return {"type": "function", "function": {"name": name}}
    raise bad(
        f"tool_choice: Input tag {kind!r} found using 'type' does not match any of the"
        " expected tags: 'auto', 'any', 'tool', 'none'"
    )

"""Anthropic Messages <-> the internal OpenAI Chat Completions shape: requests in, Messages out.

Fields with an OpenAI meaning are translated; Anthropic-only fields the internal format
cannot carry are dropped (``DROPPED``); any other field passes through untouched, as on
the OpenAI endpoint, so vendor knobs sent with ``extra_body`` still reach the upstream.
"""

from __future__ import annotations

import os
from typing import Any

import orjson

from lockgate.api.openai_wire import parse_chat
from lockgate.core.errors import BadRequest
from lockgate.core.types import JSON, ChatRequest, Usage

# Translated below; never passed through as they are.
_TRANSLATED = frozenset(
    ("model", "messages", "system", "max_tokens", "stop_sequences", "stream", "tools",
     "tool_choice", "metadata", "output_config")
)  # fmt: skip
# Anthropic-only: no equivalent in the internal format (see docs/anthropic-api.md).
DROPPED = frozenset(
    ("thinking", "service_tier", "container", "mcp_servers", "context_management",
     "cache_control", "inference_geo", "speed", "diagnostics")
)  # fmt: skip
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def to_chat_request(body: JSON, *, require_max_tokens: bool = True) -> ChatRequest:
    """A Messages request body -> the internal chat request (an OpenAI-shaped body)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid("model", "Field required" if model is None else "Input should be a string")
    out: JSON = {"model": model, "messages": _system(body.get("system"))}
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise _invalid(
            "messages", "Field required" if messages is None else "Input should be a list"
        )
    if not messages:
        raise _invalid("messages", "List should have at least 1 item")
    for i, message in enumerate(messages):
        out["messages"].extend(_message(message, f"messages.{i}"))
    max_tokens = body.get("max_tokens")
    if max_tokens is not None or require_max_tokens:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            problem = "Field required" if max_tokens is None else "Input should be an integer >= 1"
            raise _invalid("max_tokens", problem)
        out["max_tokens"] = max_tokens
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise _invalid("stop_sequences", "Input should be a list of strings")
        if stop:
            out["stop"] = stop
    if "stream" in body:
        out["stream"] = body["stream"]
    _tools(body, out)
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]
    _output_config(body.get("output_config"), out)
    for key, value in body.items():
        if key not in _TRANSLATED and key not in DROPPED:
            out[key] = value  # temperature, top_p, top_k, fallbacks, vendor fields
    req = parse_chat(out)
    req.include_usage = True  # the Anthropic stream reports usage in message_delta
    return req


def _system(system: Any) -> list[JSON]:
    if system is None or system == "" or system == []:
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    if isinstance(system, list):
        texts = []
        for i, block in enumerate(system):
            if not isinstance(block, dict) or block.get("type") != "text":
                raise _invalid(f"system.{i}", "Input should be a text block")
            texts.append(_text(block, f"system.{i}"))
        return [{"role": "system", "content": "\n".join(texts)}]
    raise _invalid("system", "Input should be a string or a list of text blocks")


def _message(message: Any, path: str) -> list[JSON]:
    """One Anthropic message -> one or more OpenAI messages, in order: tool results become
    `tool` messages, tool uses an assistant's `tool_calls`."""
    if not isinstance(message, dict):
        raise _invalid(path, "Input should be an object")
    role = message.get("role")
    if role not in ("user", "assistant"):
        raise _invalid(f"{path}.role", "Input should be 'user' or 'assistant'")
    content = message.get("content")
    if isinstance(content, str) or content == []:
        return [{"role": role, "content": content or ""}]
    if not isinstance(content, list):
        raise _invalid(f"{path}.content", "Input should be a string or a list of blocks")
    blocks = [(b, f"{path}.content.{i}") for i, b in enumerate(content)]
    return _assistant(blocks) if role == "assistant" else _user(blocks)


def _user(blocks: list[tuple[Any, str]]) -> list[JSON]:
    out: list[JSON] = []
    parts: list[JSON] = []
    for block, path in blocks:
        kind = _kind(block, path)
        if kind == "tool_result":
            if parts:
                out.append(_user_message(parts))
                parts = []
            out.extend(_tool_result(block, path))
        else:
            parts.append(_part(block, kind, path))
    if parts:
        out.append(_user_message(parts))
    return out


def _user_message(parts: list[JSON]) -> JSON:
    if len(parts) == 1 and parts[0]["type"] == "text":
        return {"role": "user", "content": parts[0]["text"]}
    return {"role": "user", "content": parts}


def _part(block: JSON, kind: str, path: str) -> JSON:
    if kind == "text":
        return {"type": "text", "text": _text(block, path)}
    if kind == "image":
        return {"type": "image_url", "image_url": {"url": _source_url(block, path, "image")}}
    if kind == "document":
        source = block.get("source")
        if isinstance(source, dict) and source.get("type") == "text":
            return {"type": "text", "text": _text(source, f"{path}.source", "data")}
        url = _source_url(block, path, "document")
        return {"type": "file", "file": {"filename": "document.pdf", "file_data": url}}
    raise _invalid(f"{path}.type", f"content block type {kind!r} is not supported here")


def _source_url(block: JSON, path: str, what: str) -> str:
    """An image or PDF source as a URL: base64 data becomes a `data:` URL."""
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64" and isinstance(source, dict):
        media, data = source.get("media_type"), source.get("data")
        if isinstance(media, str) and isinstance(data, str):
            return f"data:{media};base64,{data}"
    elif kind == "url" and isinstance(source, dict) and isinstance(source.get("url"), str):
        return str(source["url"])
    raise _invalid(f"{path}.source", f"a {what} source must be base64 (media_type, data) or a url")


def _tool_result(block: JSON, path: str) -> list[JSON]:
    """A tool result -> a `tool` message; its images follow in a user message, because
    OpenAI's tool messages carry text only."""
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise _invalid(f"{path}.tool_use_id", "Field required")
    content = block.get("content")
    texts: list[str] = []
    images: list[JSON] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for i, inner in enumerate(content):
            where = f"{path}.content.{i}"
            kind = _kind(inner, where)
            part = _part(inner, kind, where)
            if part["type"] == "text":
                texts.append(part["text"])
            else:
                images.append(part)
    elif content is not None:
        raise _invalid(f"{path}.content", "Input should be a string or a list of blocks")
    out: list[JSON] = [{"role": "tool", "tool_call_id": call_id, "content": "\n".join(texts)}]
    if images:
        out.append({"role": "user", "content": images})
    return out


def _assistant(blocks: list[tuple[Any, str]]) -> list[JSON]:
    texts: list[str] = []
    calls: list[JSON] = []
    for block, path in blocks:
        kind = _kind(block, path)
        if kind == "text":
            texts.append(_text(block, path))
        elif kind == "tool_use":
            name, call_id = block.get("name"), block.get("id")
            if not isinstance(name, str) or not isinstance(call_id, str):
                raise _invalid(path, "a tool_use block needs an id and a name")
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            )
        elif kind not in ("thinking", "redacted_thinking"):  # no internal equivalent: dropped
            raise _invalid(f"{path}.type", f"content block type {kind!r} is not supported here")
    message: JSON = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    elif not texts:
        message["content"] = ""
    return [message]


def _tools(body: JSON, out: JSON) -> None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _invalid("tools", "Input should be a list")
        functions = []
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or tool.get("type", "custom") != "custom":
                kind = tool.get("type") if isinstance(tool, dict) else None
                raise _invalid(f"tools.{i}", f"tool type {kind!r} is not supported by lockgate")
            if not isinstance(tool.get("name"), str):
                raise _invalid(f"tools.{i}.name", "Field required")
            function: JSON = {"name": tool["name"]}
            if isinstance(tool.get("description"), str):
                function["description"] = tool["description"]
            function["parameters"] = tool.get("input_schema") or {"type": "object"}
            functions.append({"type": "function", "function": function})
        if functions:
            out["tools"] = functions
    choice = body.get("tool_choice")
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool" and isinstance(choice, dict) and isinstance(choice.get("name"), str):
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise _invalid("tool_choice", "Input should be auto, any, none or tool (with a name)")
    if isinstance(choice, dict) and choice.get("disable_parallel_tool_use") and "tools" in out:
        out["parallel_tool_calls"] = False


def _output_config(config: Any, out: JSON) -> None:
    """Structured outputs: `output_config.format` -> `response_format`; `effort` is dropped."""
    fmt = config.get("format") if isinstance(config, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = fmt.get("schema")
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": schema, "strict": True},
        }


def _kind(block: Any, path: str) -> str:
    kind = block.get("type") if isinstance(block, dict) else None
    if not isinstance(kind, str):
        raise _invalid(f"{path}.type", "Field required")
    return kind


def _text(block: JSON, path: str, key: str = "text") -> str:
    text = block.get(key)
    if not isinstance(text, str):
        raise _invalid(f"{path}.{key}", "Input should be a string")
    return text


def _invalid(path: str, problem: str) -> BadRequest:
    return BadRequest(f"{path}: {problem}", param=path)


# Responses


def message_id() -> str:
    return f"msg_{os.urandom(12).hex()}"


def stop_reason(finish: Any, choice: JSON, stop: Any) -> tuple[str, str | None]:
    """Anthropic's stop_reason and stop_sequence for an OpenAI finish_reason. Which stop
    sequence matched is known only when the upstream says (vLLM's `stop_reason`)."""
    matched = choice.get("stop_reason")
    if finish == "stop" and isinstance(matched, str) and isinstance(stop, list) and matched in stop:
        return "stop_sequence", matched
    return STOP_REASONS.get(finish, "end_turn"), None


def anthropic_usage(usage: Usage) -> JSON:
    """OpenAI's prompt_tokens include cached tokens; Anthropic's input_tokens exclude both
    cache reads and cache writes, which it reports on their own."""
    uncached = usage.prompt_tokens - usage.cached_tokens - usage.cache_creation_tokens
    return {
        "input_tokens": max(uncached, 0),
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": usage.cache_creation_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
    }


def tool_input(arguments: Any) -> JSON:
    """Tool arguments (a JSON string) as a tool_use block's `input` object; arguments that
    are not a JSON object are kept under `_raw_arguments` rather than lost."""
    if not arguments:
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {"_raw_arguments": arguments}


def to_message(openai: JSON, usage: Usage, req: ChatRequest) -> JSON:
    """An OpenAI chat completion -> an Anthropic Message (the first choice)."""
    choices = openai.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    content: list[JSON] = []
    text = message.get("content") or message.get("refusal")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{os.urandom(12).hex()}",
                "name": function.get("name") or "",
                "input": tool_input(function.get("arguments")),
            }
        )
    reason, sequence = stop_reason(choice.get("finish_reason"), choice, req.body.get("stop"))
    return {
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": req.model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": anthropic_usage(usage),
    }

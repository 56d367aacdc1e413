"""OpenAI chat request -> Anthropic Messages request (POST /v1/messages).

What is translated and how is listed in docs/providers/anthropic.md; what Anthropic cannot
do (several choices, audio input, logprobs) is refused with a 400 naming the parameter
rather than silently dropped.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from lockgate.core.errors import BadRequest
from lockgate.core.types import JSON

# Anthropic requires `max_tokens`; OpenAI does not. Used when neither the request nor the
# deployment says how long an answer may be.
DEFAULT_MAX_TOKENS = 4096

_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+)(?:;[^,;]*)*?;base64,(?P<data>.*)", re.S)
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
# OpenAI fields whose answer Anthropic cannot give: refused rather than silently ignored.
# Other OpenAI-only fields (seed, penalties, logit_bias...) are left out of the request,
# since Anthropic rejects fields it does not know.
_REFUSED = {
    "logprobs": "Anthropic does not return log probabilities",
    "top_logprobs": "Anthropic does not return log probabilities",
    "audio": "Anthropic does not produce audio",
    "prediction": "Anthropic does not support predicted outputs",
}


def unsupported(param: str, why: str) -> BadRequest:
    return BadRequest(f"'{param}' is not supported: {why}.", param=param, code="unsupported_value")


def messages_request(body: JSON, model: str, default_max_tokens: int, *, stream: bool) -> JSON:
    """The Messages API body for an OpenAI chat body."""
    n = body.get("n")
    if n not in (None, 1):
        raise unsupported("n", "Anthropic returns one choice per request; send n requests")
    for param, why in _REFUSED.items():
        if body.get(param) not in (None, False):
            raise unsupported(param, why)
    system, messages = _conversation(body.get("messages") or [])
    out: JSON = {"model": model, "messages": messages}
    if system:
        out["system"] = system
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    out["max_tokens"] = limit if isinstance(limit, int) else default_max_tokens
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop_sequences"] = list(stop)
    # top_k and thinking are Anthropic's own; a client sends them with `extra_body`.
    for name in ("temperature", "top_p", "top_k", "thinking"):
        if body.get(name) is not None:
            out[name] = body[name]
    user = body.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    _tools(body, out)
    _response_format(body, out)
    if stream:
        out["stream"] = True
    return out


# -- messages ------------------------------------------------------------------------------


def _conversation(messages: list[Any]) -> tuple[str | list[JSON], list[JSON]]:
    """Top-level `system` (every system/developer message, in order) and the turns, with
    consecutive same-role turns merged and tool results folded into user turns."""
    system: list[JSON] = []
    turns: list[JSON] = []
    for i, message in enumerate(messages):
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_text_blocks(message.get("content"), f"messages[{i}].content"))
            continue
        if role == "user":
            blocks = _user_blocks(message.get("content"), f"messages[{i}].content")
            anthropic_role = "user"
        elif role == "assistant":
            blocks = _assistant_blocks(message, i)
            anthropic_role = "assistant"
        elif role == "tool":
            blocks = [_tool_result(message, i)]
            anthropic_role = "user"
        else:
            raise unsupported(f"messages[{i}].role", f"Anthropic has no {role!r} role")
        if not blocks:
            continue  # an empty turn: Anthropic refuses empty content
        if turns and turns[-1]["role"] == anthropic_role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": anthropic_role, "content": blocks})
    for turn in turns:
        content = turn["content"]
        if len(content) == 1 and content[0]["type"] == "text" and len(content[0]) == 2:
            turn["content"] = content[0]["text"]  # the plain form, as the docs write it
    if all(len(block) == 2 for block in system):
        return "\n\n".join(block["text"] for block in system), turns
    return system, turns


def _text_blocks(content: Any, where: str) -> list[JSON]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if content is None:
        return []
    if not isinstance(content, list):
        raise BadRequest(f"'{where}' must be a string or an array of parts.", param=where)
    blocks: list[JSON] = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in ("text", "refusal"):
            raise unsupported(f"{where}[{j}]", "only text parts are allowed here")
        blocks.append(_text_part(part, "refusal" if part["type"] == "refusal" else "text"))
    return blocks


def _text_part(part: JSON, key: str) -> JSON:
    block: JSON = {"type": "text", "text": str(part.get(key) or "")}
    if isinstance(part.get("cache_control"), dict):
        block["cache_control"] = part["cache_control"]  # prompt caching passes through
    return block


def _user_blocks(content: Any, where: str) -> list[JSON]:
    if not isinstance(content, list):
        return _text_blocks(content, where)
    blocks: list[JSON] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append(_text_part(part, "text"))
        elif kind == "image_url":
            blocks.append(_image(part, f"{where}[{j}]"))
        elif kind == "file":
            blocks.append(_document(part, f"{where}[{j}]"))
        else:
            raise unsupported(f"{where}[{j}].type", f"Anthropic cannot take {kind!r} parts")
    return blocks


def _image(part: JSON, where: str) -> JSON:
    spec = part.get("image_url")
    url = spec.get("url") if isinstance(spec, dict) else spec
    if not isinstance(url, str):
        raise BadRequest(f"'{where}.image_url.url' must be a string.", param=where)
    if url.startswith("data:"):
        media_type, data = _data_url(url, where)
        if media_type not in _IMAGE_TYPES:
            raise unsupported(
                f"{where}.image_url", f"Anthropic takes {', '.join(_IMAGE_TYPES)} images"
            )
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise BadRequest(f"'{where}.image_url.url' must be a data: or http(s) URL.", param=where)


def _document(part: JSON, where: str) -> JSON:
    spec = part.get("file")
    data_url = spec.get("file_data") if isinstance(spec, dict) else None
    if not isinstance(data_url, str):
        raise unsupported(f"{where}.file", "Anthropic needs the file inline as file_data")
    media_type, data = _data_url(data_url, where)
    if media_type != "application/pdf":
        raise unsupported(f"{where}.file", "Anthropic takes PDF documents only")
    return {
        "type": "document",
        "source": {"type": "base64", "media_type": media_type, "data": data},
    }


def _data_url(url: str, where: str) -> tuple[str, str]:
    match = _DATA_URL.fullmatch(url)
    if match is None:
        raise BadRequest(f"'{where}' is not a base64 data: URL.", param=where)
    data = match.group("data")
    if _BASE64.fullmatch(data) is None:
        raise BadRequest(f"'{where}' does not hold base64 data.", param=where)
    return match.group("type").lower(), data


def _assistant_blocks(message: JSON, i: int) -> list[JSON]:
    blocks = _text_blocks(message.get("content"), f"messages[{i}].content")
    calls = message.get("tool_calls") or []
    for j, call in enumerate(calls):
        where = f"messages[{i}].tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(call.get("id"), str):
            raise BadRequest(f"'{where}' needs an id and a function.", param=where)
        blocks.append(
            {
                "type": "tool_use",
                "id": call["id"],
                "name": function.get("name"),
                "input": _arguments(function.get("arguments"), f"{where}.function.arguments"),
            }
        )
    return blocks


def _arguments(raw: Any, where: str) -> JSON:
    if raw in (None, ""):
        return {}
    if isinstance(raw, dict):
        return raw
    try:
        value = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise BadRequest(f"'{where}' is not valid JSON.", param=where) from exc
    if not isinstance(value, dict):
        raise BadRequest(f"'{where}' must be a JSON object.", param=where)
    return value


def _tool_result(message: JSON, i: int) -> JSON:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str):
        raise BadRequest(
            f"Missing required parameter: 'messages[{i}].tool_call_id'.",
            param=f"messages[{i}].tool_call_id",
            code="missing_required_parameter",
        )
    content = message.get("content")
    result: JSON = {"type": "tool_result", "tool_use_id": call_id}
    if isinstance(content, str):
        result["content"] = content
    elif content is not None:
        result["content"] = _user_blocks(content, f"messages[{i}].content")
    return result


# -- tools and output format ---------------------------------------------------------------


def _tools(body: JSON, out: JSON) -> None:
    tools = body.get("tools")
    if tools:
        out["tools"] = [_tool(tool, i) for i, tool in enumerate(tools)]
    choice = body.get("tool_choice")
    anthropic_choice: JSON | None = None
    if choice == "auto":
        anthropic_choice = {"type": "auto"}
    elif choice == "required":
        anthropic_choice = {"type": "any"}
    elif choice == "none":
        anthropic_choice = {"type": "none"}
    elif isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str):
            raise BadRequest("'tool_choice.function.name' is required.", param="tool_choice")
        anthropic_choice = {"type": "tool", "name": name}
    elif choice is not None:
        raise BadRequest(f"Invalid 'tool_choice': {choice!r}.", param="tool_choice")
    if body.get("parallel_tool_calls") is False and tools:
        anthropic_choice = anthropic_choice or {"type": "auto"}
        if anthropic_choice["type"] != "none":
            anthropic_choice["disable_parallel_tool_use"] = True
    if anthropic_choice is not None and (tools or anthropic_choice["type"] == "none"):
        out["tool_choice"] = anthropic_choice


def _tool(tool: Any, i: int) -> JSON:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(tool, dict) or tool.get("type", "function") != "function":
        raise unsupported(f"tools[{i}].type", "Anthropic takes function tools only")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise BadRequest(
            f"Missing required parameter: 'tools[{i}].function.name'.",
            param=f"tools[{i}].function.name",
            code="missing_required_parameter",
        )
    schema = function.get("parameters")
    out: JSON = {
        "name": function["name"],
        "input_schema": schema if isinstance(schema, dict) else {"type": "object"},
    }
    if function.get("description"):
        out["description"] = function["description"]
    if isinstance(tool.get("cache_control"), dict):
        out["cache_control"] = tool["cache_control"]
    return out


def _response_format(body: JSON, out: JSON) -> None:
    """JSON output: Anthropic has no response_format on the Messages API version lockgate
    speaks, so a JSON schema becomes an instruction in the system prompt (the model is
    asked, not forced); `json_object` likewise. Documented in docs/providers/anthropic.md."""
    fmt = body.get("response_format")
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return
    if fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        rule = (
            "Answer with a single JSON value that conforms to this JSON schema, and nothing"
            " else: " + orjson.dumps(schema or {}).decode()
        )
    elif fmt.get("type") == "json_object":
        rule = "Answer with a single JSON object and nothing else."
    else:
        raise unsupported("response_format.type", f"unknown type {fmt.get('type')!r}")
    system = out.get("system")
    if isinstance(system, list):
        system.append({"type": "text", "text": rule})
    else:
        out["system"] = f"{system}\n\n{rule}" if system else rule

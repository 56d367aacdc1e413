"""OpenAI chat request -> Bedrock Converse request body.

Translated: system/developer messages -> `system`; user, assistant and tool messages ->
`messages` (consecutive messages of one role merged, as Converse wants strict user/assistant
alternation); text parts, `data:` image parts, tool calls and tool results as content
blocks; max_tokens / max_completion_tokens, temperature, top_p, stop -> `inferenceConfig`;
tools and tool_choice -> `toolConfig`. Bedrock's own request fields, when a client sends
them in the body (`extra_body`), pass through. Other OpenAI parameters have no documented
Converse equivalent and are dropped; `n` > 1 is refused.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from lockgate.core.errors import BadRequest
from lockgate.core.types import JSON

# Converse fields a client may send itself (e.g. `extra_body={"guardrailConfig": {...}}`).
PASSTHROUGH = (
    "additionalModelRequestFields",
    "additionalModelResponseFieldPaths",
    "guardrailConfig",
    "performanceConfig",
    "promptVariables",
    "requestMetadata",
)
IMAGE_FORMATS = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "gif": "gif", "webp": "webp"}


def converse_body(body: JSON) -> JSON:
    n = body.get("n")
    if n is not None and n != 1:
        raise BadRequest("Bedrock returns one choice: 'n' must be 1", param="n")
    system, messages = _messages(body.get("messages"))
    out: JSON = {"messages": messages}
    if system:
        out["system"] = system
    inference = _inference_config(body)
    if inference:
        out["inferenceConfig"] = inference
    tools = _tool_config(body, messages)
    if tools is not None:
        out["toolConfig"] = tools
    for name in PASSTHROUGH:
        if name in body:
            out[name] = body[name]
    return out


def _messages(messages: Any) -> tuple[list[JSON], list[JSON]]:
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array", param="messages")
    system: list[JSON] = []
    out: list[JSON] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise BadRequest(f"messages[{i}] must be an object", param=f"messages[{i}]")
        role = message.get("role")
        if role in ("system", "developer"):
            text = _plain_text(message.get("content"), i)
            if text:
                system.append({"text": text})
            continue
        if role == "user":
            role, blocks = "user", _user_blocks(message.get("content"), i)
        elif role == "assistant":
            blocks = _assistant_blocks(message, i)
        elif role == "tool":
            role, blocks = "user", [_tool_result(message, i)]
        else:
            raise BadRequest(
                f"messages[{i}].role {role!r} is not supported by Bedrock",
                param=f"messages[{i}].role",
            )
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return system, out


def _plain_text(content: Any, i: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    raise BadRequest(f"messages[{i}].content must be a string or an array", param="messages")


def _user_blocks(content: Any, i: int) -> list[JSON]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise BadRequest(f"messages[{i}].content must be a string or an array", param="messages")
    blocks: list[JSON] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            blocks.append({"text": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            blocks.append(_image(url, i))
        else:
            raise BadRequest(
                f"messages[{i}].content: part type {kind!r} is not supported by Bedrock",
                param=f"messages[{i}].content",
            )
    return blocks


def _image(url: Any, i: int) -> JSON:
    """A `data:image/...;base64,` URL as an image block; Converse takes no image URLs."""
    param = f"messages[{i}].content"
    if not isinstance(url, str) or not url.startswith("data:"):
        raise BadRequest(
            "Bedrock takes images as bytes: send them as data:image/...;base64 URLs", param=param
        )
    header, _, data = url[5:].partition(",")
    media, _, encoding = header.partition(";")
    fmt = IMAGE_FORMATS.get(media.removeprefix("image/").lower())
    if encoding != "base64" or fmt is None or not media.startswith("image/"):
        raise BadRequest("images must be base64 data URLs of png, jpeg, gif or webp", param=param)
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("the image data is not valid base64", param=param) from exc
    # The JSON wire carries `bytes` as base64, so the client's encoding is sent as is.
    return {"image": {"format": fmt, "source": {"bytes": data}}}


def _assistant_blocks(message: JSON, i: int) -> list[JSON]:
    blocks: list[JSON] = []
    text = _plain_text(message.get("content"), i)
    if text:
        blocks.append({"text": text})
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise BadRequest(f"messages[{i}].tool_calls: a call without a function name")
        arguments = function.get("arguments") or "{}"
        try:
            value = orjson.loads(arguments)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(
                f"messages[{i}].tool_calls: arguments are not JSON",
                param=f"messages[{i}].tool_calls",
            ) from exc
        blocks.append(
            {"toolUse": {"toolUseId": call.get("id"), "name": function["name"], "input": value}}
        )
    return blocks


def _tool_result(message: JSON, i: int) -> JSON:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str):
        raise BadRequest(
            f"messages[{i}].tool_call_id is required", param=f"messages[{i}].tool_call_id"
        )
    # Sent as text: every model that takes tools accepts text results (`json` only some).
    text = _plain_text(message.get("content"), i)
    return {"toolResult": {"toolUseId": call_id, "content": [{"text": text}]}}


def _inference_config(body: JSON) -> JSON:
    config: JSON = {}
    limit = body.get("max_completion_tokens")
    if limit is None:
        limit = body.get("max_tokens")
    if limit is not None:
        config["maxTokens"] = limit
    if body.get("temperature") is not None:
        config["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        config["topP"] = body["top_p"]
    stop = body.get("stop")
    if isinstance(stop, str):
        config["stopSequences"] = [stop]
    elif isinstance(stop, list) and stop:
        config["stopSequences"] = stop
    return config


def _has_tool_blocks(messages: list[JSON]) -> bool:
    return any(
        "toolUse" in block or "toolResult" in block for m in messages for block in m["content"]
    )


def _tool_config(body: JSON, messages: list[JSON]) -> JSON | None:
    specs: list[JSON] = []
    for tool in body.get("tools") or ():
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type", "function") != "function":
            continue
        spec: JSON = {
            "name": function.get("name"),
            "inputSchema": {"json": function.get("parameters") or {"type": "object"}},
        }
        if function.get("description"):
            spec["description"] = function["description"]
        specs.append({"toolSpec": spec})
    if not specs:
        # OpenAI accepts a conversation holding tool calls without `tools`; Converse wants a
        # `toolConfig` then, so the tools it used are declared with an open schema.
        names = dict.fromkeys(
            block["toolUse"]["name"]
            for m in messages
            for block in m["content"]
            if "toolUse" in block
        )
        if not names:
            return None
        open_schema = {"json": {"type": "object"}}
        return {"tools": [{"toolSpec": {"name": n, "inputSchema": open_schema}} for n in names]}
    choice = body.get("tool_choice")
    # Converse has no "none": the tools are left out, unless the conversation already holds
    # tool blocks (then Converse requires `toolConfig`, and the model may still call one).
    if choice == "none" and not _has_tool_blocks(messages):
        return None
    config: JSON = {"tools": specs}
    if choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict):
        named = choice.get("function")
        if isinstance(named, dict) and isinstance(named.get("name"), str):
            config["toolChoice"] = {"tool": {"name": named["name"]}}
    # "auto" is Converse's default; sending it explicitly fails on models without toolChoice.
    return config

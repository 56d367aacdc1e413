"""OpenAI chat request -> Gemini `GenerateContentRequest` (contents, systemInstruction, tools,
toolConfig, generationConfig)."""

from __future__ import annotations

from typing import Any

import orjson
from yarl import URL

from lockgate.core.errors import BadRequest
from lockgate.core.types import JSON
from lockgate.providers.gemini.schema import to_gemini_schema
from lockgate.providers.gemini.toolids import split_call_id

# OpenAI sampling fields -> Gemini generationConfig fields, copied as they are.
_SAMPLING = {
    "temperature": "temperature",
    "top_p": "topP",
    "n": "candidateCount",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
    "logprobs": "responseLogprobs",
    "top_logprobs": "logprobs",
}
# Google's documented mapping of OpenAI's reasoning_effort onto a thinking budget.
_THINKING_BUDGETS = {"none": 0, "minimal": 1024, "low": 1024, "medium": 8192, "high": 24576}
_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3"}
# File extension -> media type for URL parts (a table, not `mimetypes`, which reads system
# files on first use and so would block the event loop).
_MEDIA_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "heic": "image/heic",
    "heif": "image/heif",
    "gif": "image/gif",
    "pdf": "application/pdf",
    "wav": "audio/wav",
    "mp3": "audio/mp3",
    "flac": "audio/flac",
    "mp4": "video/mp4",
    "txt": "text/plain",
}


def chat_request(body: JSON) -> JSON:
    """The Gemini request for an OpenAI chat body (the model goes in the URL)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array", param="messages")
    system, contents = _contents(messages)
    if not contents:
        raise BadRequest(
            "Gemini needs at least one user or assistant message besides the system ones",
            param="messages",
        )
    out: JSON = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = [{"functionDeclarations": tools}]
        config = _tool_config(body.get("tool_choice"))
        if config is not None:
            out["toolConfig"] = {"functionCallingConfig": config}
    generation = _generation_config(body)
    if generation:
        out["generationConfig"] = generation
    native = body.get("gemini")
    if isinstance(native, dict):
        # Gemini-native fields (safetySettings, cachedContent, ...) sent as extra_body.
        for key, value in native.items():
            if key == "generationConfig" and isinstance(value, dict):
                out["generationConfig"] = {**out.get("generationConfig", {}), **value}
            else:
                out[key] = value
    return out


def _contents(messages: list[Any]) -> tuple[list[JSON], list[JSON]]:
    """(systemInstruction parts, contents); consecutive tool results share one content,
    as Gemini wants every functionResponse of a turn together."""
    system: list[JSON] = []
    contents: list[JSON] = []
    call_names: dict[str, str] = {}
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise BadRequest(f"'messages[{i}]' must be an object", param=f"messages[{i}]")
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_parts(message.get("content"), f"messages[{i}].content"))
        elif role == "user":
            parts = _parts(message.get("content"), f"messages[{i}].content")
            contents.append({"role": "user", "parts": parts})
        elif role == "assistant":
            contents.append({"role": "model", "parts": _model_parts(message, i, call_names)})
        elif role in ("tool", "function"):
            part = _function_response(message, i, call_names)
            last = contents[-1] if contents else None
            if last is not None and last["role"] == "user" and _all_responses(last["parts"]):
                last["parts"].append(part)
            else:
                contents.append({"role": "user", "parts": [part]})
        else:
            raise BadRequest(
                f"'messages[{i}].role': {role!r} is not a role Gemini can take",
                param=f"messages[{i}].role",
            )
    return system, contents


def _all_responses(parts: list[JSON]) -> bool:
    return bool(parts) and all("functionResponse" in p for p in parts)


def _parts(content: Any, param: str) -> list[JSON]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}]
    if not isinstance(content, list):
        raise BadRequest(f"'{param}' must be a string or an array of parts", param=param)
    return [_part(p, f"{param}[{j}]") for j, p in enumerate(content)]


def _part(part: Any, param: str) -> JSON:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text" and isinstance(part.get("text"), str):
        return {"text": part["text"]}
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if isinstance(url, str):
            return _media(url, param)
    if kind == "input_audio" and isinstance(part.get("input_audio"), dict):
        audio = part["input_audio"]
        mime = _AUDIO_TYPES.get(str(audio.get("format")))
        if mime is not None and isinstance(audio.get("data"), str):
            return {"inlineData": {"mimeType": mime, "data": audio["data"]}}
    if kind == "file" and isinstance(part.get("file"), dict):
        data = part["file"].get("file_data")
        if isinstance(data, str):
            return _media(data, param)
    raise BadRequest(f"'{param}': this content part cannot be sent to Gemini", param=param)


def _media(url: str, param: str) -> JSON:
    """A data: URL becomes inline bytes; an http(s) URL a file reference (Gemini fetches
    it), which needs a MIME type: taken from the URL's file extension."""
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        mime, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or not mime:
            raise BadRequest(f"'{param}': expected a base64 data URL", param=param)
        return {"inlineData": {"mimeType": mime, "data": data}}
    if url.startswith(("http://", "https://", "gs://")):
        suffix = URL(url).path.rpartition(".")[2].lower()
        guessed = _MEDIA_TYPES.get(suffix)
        if guessed is None:
            raise BadRequest(
                f"'{param}': Gemini needs the media type of {url!r}; use a URL ending in a"
                " file extension (.png, .jpg, .pdf, ...) or a base64 data URL",
                param=param,
            )
        return {"fileData": {"mimeType": guessed, "fileUri": url}}
    raise BadRequest(f"'{param}': unsupported URL scheme", param=param)


def _model_parts(message: JSON, i: int, call_names: dict[str, str]) -> list[JSON]:
    parts = [
        p for p in _parts(message.get("content"), f"messages[{i}].content") if p.get("text") != ""
    ]
    calls = message.get("tool_calls")
    if not isinstance(calls, list):
        return parts or [{"text": ""}]
    for j, call in enumerate(calls):
        param = f"messages[{i}].tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise BadRequest(f"'{param}.function.name' is required", param=param)
        arguments = function.get("arguments") or "{}"
        try:
            args = orjson.loads(arguments) if isinstance(arguments, str) else arguments
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"'{param}.function.arguments' is not JSON", param=param) from exc
        if not isinstance(args, dict):
            raise BadRequest(f"'{param}.function.arguments' must be a JSON object", param=param)
        part: JSON = {"functionCall": {"name": function["name"], "args": args}}
        call_id = call.get("id")
        if isinstance(call_id, str):
            call_names[call_id] = function["name"]
            signature = split_call_id(call_id)
            if signature is not None:
                part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def _function_response(message: JSON, i: int, call_names: dict[str, str]) -> JSON:
    call_id = message.get("tool_call_id")
    name = call_names.get(call_id) if isinstance(call_id, str) else None
    if name is None and isinstance(message.get("name"), str):
        name = message["name"]
    if name is None:
        raise BadRequest(
            f"'messages[{i}].tool_call_id' matches no tool call of an earlier assistant"
            " message; Gemini needs the function's name",
            param=f"messages[{i}].tool_call_id",
        )
    content = message.get("content")
    text = content if isinstance(content, str) else _joined_text(content)
    try:
        output: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        output = text
    # Gemini's documented convention: the result under "output" (a Struct is required).
    return {"functionResponse": {"name": name, "response": {"output": output}}}


def _joined_text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return "" if content is None else str(content)


def _tools(tools: Any) -> list[JSON]:
    if not isinstance(tools, list):
        return []
    declarations: list[JSON] = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise BadRequest(
                f"'tools[{i}]': only function tools can be sent to Gemini", param=f"tools[{i}]"
            )
        declaration: JSON = {"name": function["name"]}
        if isinstance(function.get("description"), str):
            declaration["description"] = function["description"]
        parameters = function.get("parameters")
        if isinstance(parameters, dict) and parameters.get("properties"):
            param = f"tools[{i}].function.parameters"
            declaration["parameters"] = to_gemini_schema(parameters, param=param)
        declarations.append(declaration)
    return declarations


def _tool_config(choice: Any) -> JSON | None:
    if choice is None:
        return None
    if choice in ("auto", "none", "required"):
        return {"mode": {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice]}
    function = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return {"mode": "ANY", "allowedFunctionNames": [function["name"]]}
    raise BadRequest("'tool_choice' is not one Gemini can take", param="tool_choice")


def _generation_config(body: JSON) -> JSON:
    config: JSON = {}
    for ours, theirs in _SAMPLING.items():
        if body.get(ours) is not None:
            config[theirs] = body[ours]
    limit = body.get("max_completion_tokens")
    if limit is None:
        limit = body.get("max_tokens")
    if limit is not None:
        config["maxOutputTokens"] = limit
    stop = body.get("stop")
    if isinstance(stop, str):
        config["stopSequences"] = [stop]
    elif isinstance(stop, list) and stop:
        config["stopSequences"] = stop
    fmt = body.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
    if kind == "json_schema":
        spec = fmt.get("json_schema") if isinstance(fmt, dict) else None
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if schema is not None:
            param = "response_format.json_schema.schema"
            config["responseSchema"] = to_gemini_schema(schema, param=param)
    effort = body.get("reasoning_effort")
    if isinstance(effort, str) and effort in _THINKING_BUDGETS:
        config["thinkingConfig"] = {"thinkingBudget": _THINKING_BUDGETS[effort]}
    return config

"""The simulator's reading of Gemini requests: validate them as the Gemini API does (unknown
fields, roles, schema keys) and translate them into the OpenAI chat body it plans from."""

from __future__ import annotations

from typing import Any

import orjson

from lockgate.providers.gemini.schema import SCHEMA_KEYS
from lockgate.providers.simulator.errors import SimulatedError

_TOP_LEVEL = frozenset(
    {
        "contents",
        "systemInstruction",
        "tools",
        "toolConfig",
        "generationConfig",
        "safetySettings",
        "cachedContent",
        "labels",
    }
)
_GENERATION = frozenset(
    {
        "stopSequences",
        "responseMimeType",
        "responseSchema",
        "responseJsonSchema",
        "responseModalities",
        "candidateCount",
        "maxOutputTokens",
        "temperature",
        "topP",
        "topK",
        "seed",
        "presencePenalty",
        "frequencyPenalty",
        "responseLogprobs",
        "logprobs",
        "enableEnhancedCivicAnswers",
        "speechConfig",
        "thinkingConfig",
        "mediaResolution",
    }
)
_PART = frozenset(
    {
        "text",
        "inlineData",
        "fileData",
        "functionCall",
        "functionResponse",
        "thought",
        "thoughtSignature",
        "executableCode",
        "codeExecutionResult",
        "videoMetadata",
    }
)


def invalid_argument(message: str) -> SimulatedError:
    """A 400 the Gemini wire renders as INVALID_ARGUMENT with this very message."""
    return SimulatedError(400, message, "INVALID_ARGUMENT")


def _camel(name: str) -> str:
    """Gemini reads proto field names in either spelling: system_instruction too."""
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def _fields(value: Any, allowed: frozenset[str], where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid_argument(
            f"Invalid JSON payload received. Expected an object at '{where}'."
            if where
            else "Invalid JSON payload received. Expected an object."
        )
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = _camel(key)
        if name not in allowed:
            at = f" at '{where}'" if where else ""
            raise invalid_argument(
                f'Invalid JSON payload received. Unknown name "{key}"{at}: Cannot find field.'
            )
        out[name] = item
    return out


def _listed(value: Any) -> Any:
    """Gemini takes one object where a list is expected (`"parts": {"text": ...}`)."""
    return [value] if isinstance(value, dict) else value


def check_schema(schema: Any, where: str) -> None:
    """Gemini refuses JSON Schema keys outside its OpenAPI subset, e.g. additionalProperties."""
    fields = _fields(schema, SCHEMA_KEYS, where)
    for name, sub in (fields.get("properties") or {}).items():
        check_schema(sub, f"{where}.properties[{name}].value")
    if "items" in fields:
        check_schema(fields["items"], f"{where}.items")
    for i, sub in enumerate(fields.get("anyOf") or ()):
        check_schema(sub, f"{where}.any_of[{i}]")


def chat_body(body: Any, model: str, stream: bool) -> dict[str, Any]:
    """The OpenAI chat body the simulator plans from, for a Gemini request."""
    request = _fields(body, _TOP_LEVEL, "")
    contents = _listed(request.get("contents"))
    if not isinstance(contents, list) or not contents:
        raise invalid_argument("* GenerateContentRequest.contents: contents is not specified\n")
    messages: list[dict[str, Any]] = []
    system = request.get("systemInstruction")
    if system is not None:
        parts = _fields(system, frozenset({"parts", "role"}), "system_instruction").get("parts")
        text = " ".join(p.get("text", "") for p in _parts(parts, "system_instruction"))
        messages.append({"role": "system", "content": text})
    messages.extend(_messages(contents))
    out: dict[str, Any] = {"model": model, "messages": messages}
    out.update(_tools(request.get("tools"), request.get("toolConfig")))
    out.update(_generation(request.get("generationConfig")))
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _parts(parts: Any, where: str) -> list[dict[str, Any]]:
    parts = _listed(parts)
    if not isinstance(parts, list) or not parts:
        raise invalid_argument(f"* {where}.parts: contents.parts must not be empty.\n")
    return [_fields(p, _PART, f"{where}.parts[{i}]") for i, p in enumerate(parts)]


def _messages(contents: list[Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    calls: dict[str, list[str]] = {}  # function name -> ids of its calls not yet answered
    for i, raw in enumerate(contents):
        content = _fields(raw, frozenset({"role", "parts"}), f"contents[{i}]")
        role = content.get("role") or "user"
        if role not in ("user", "model", "function"):
            raise invalid_argument("Please use a valid role: user, model.")
        parts = _parts(content.get("parts"), f"contents[{i}]")
        if role == "model":
            messages.append(_assistant(parts, calls, len(messages)))
            continue
        user_parts: list[dict[str, Any]] = []
        for j, part in enumerate(parts):
            if "functionResponse" in part:
                messages.append(_tool_result(part["functionResponse"], calls, f"{i}.{j}"))
            elif isinstance(part.get("text"), str):
                user_parts.append({"type": "text", "text": part["text"]})
            elif isinstance(part.get("inlineData"), dict):
                blob = part["inlineData"]
                url = f"data:{blob.get('mimeType')};base64,{blob.get('data')}"
                user_parts.append({"type": "image_url", "image_url": {"url": url}})
            elif isinstance(part.get("fileData"), dict):
                url = str(part["fileData"].get("fileUri"))
                user_parts.append({"type": "image_url", "image_url": {"url": url}})
        if user_parts:
            messages.append({"role": "user", "content": user_parts})
    return messages


def _assistant(
    parts: list[dict[str, Any]], calls: dict[str, list[str]], position: int
) -> dict[str, Any]:
    text = "".join(p["text"] for p in parts if isinstance(p.get("text"), str))
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    tool_calls = []
    for n, part in enumerate(p for p in parts if "functionCall" in p):
        call = part["functionCall"]
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise invalid_argument("* functionCall.name: name must be specified.\n")
        call_id = f"call_sim_{position}_{n}"
        calls.setdefault(call["name"], []).append(call_id)
        arguments = orjson.dumps(call.get("args") or {}).decode()
        tool_calls.append(
            {
                "id": call_id,
                "type": "function",
                "function": {"name": call["name"], "arguments": arguments},
            }
        )
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def _tool_result(response: Any, calls: dict[str, list[str]], where: str) -> dict[str, Any]:
    if not isinstance(response, dict) or not isinstance(response.get("name"), str):
        raise invalid_argument("* functionResponse.name: name must be specified.\n")
    result = response.get("response")
    if not isinstance(result, dict):
        raise invalid_argument(
            "Invalid JSON payload received. Expected an object at"
            f" 'contents[{where}].function_response.response'."
        )
    pending = calls.get(response["name"]) or []
    if not pending:
        raise invalid_argument(
            "Please ensure that function response turn comes immediately after a function"
            " call turn."
        )
    output = result.get("output", result)
    text = output if isinstance(output, str) else orjson.dumps(output).decode()
    return {"role": "tool", "tool_call_id": pending.pop(0), "content": text}


def _tools(tools: Any, config: Any) -> dict[str, Any]:
    if tools is None:
        return {}
    tools = _listed(tools)
    if not isinstance(tools, list):
        raise invalid_argument("Invalid JSON payload received. Expected a list at 'tools'.")
    functions: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        fields = _fields(
            tool,
            frozenset({"functionDeclarations", "googleSearch", "codeExecution", "urlContext"}),
            f"tools[{i}]",
        )
        for j, raw in enumerate(_listed(fields.get("functionDeclarations")) or ()):
            where = f"tools[{i}].function_declarations[{j}]"
            declaration = _fields(
                raw,
                frozenset(
                    {"name", "description", "parameters", "parametersJsonSchema", "response"}
                ),
                where,
            )
            if "parameters" in declaration:
                check_schema(declaration["parameters"], f"{where}.parameters")
            function = {
                "name": declaration.get("name"),
                "description": declaration.get("description", ""),
            }
            function["parameters"] = (
                declaration.get("parameters")
                or declaration.get("parametersJsonSchema")
                or {"type": "object", "properties": {}}
            )
            functions.append({"type": "function", "function": function})
    out: dict[str, Any] = {"tools": functions} if functions else {}
    config = {_camel(k): v for k, v in config.items()} if isinstance(config, dict) else None
    calling = config.get("functionCallingConfig") if config is not None else None
    if functions and isinstance(calling, dict):
        calling = {_camel(k): v for k, v in calling.items()}
        mode = str(calling.get("mode", "AUTO")).upper()
        allowed = calling.get("allowedFunctionNames")
        if mode == "NONE":
            out["tool_choice"] = "none"
        elif mode == "ANY" and isinstance(allowed, list) and len(allowed) == 1:
            out["tool_choice"] = {"type": "function", "function": {"name": allowed[0]}}
        elif mode in ("ANY", "VALIDATED"):
            out["tool_choice"] = "required"
        elif mode != "AUTO":
            raise invalid_argument(
                f"Invalid value at 'tool_config.function_calling_config.mode' ({mode})"
            )
    return out


def _generation(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    fields = _fields(config, _GENERATION, "generation_config")
    out: dict[str, Any] = {}
    for theirs, ours in (
        ("maxOutputTokens", "max_tokens"),
        ("candidateCount", "n"),
        ("temperature", "temperature"),
        ("topP", "top_p"),
        ("seed", "seed"),
        ("presencePenalty", "presence_penalty"),
        ("frequencyPenalty", "frequency_penalty"),
        ("stopSequences", "stop"),
        ("responseLogprobs", "logprobs"),
        ("logprobs", "top_logprobs"),
    ):
        if fields.get(theirs) is not None:
            out[ours] = fields[theirs]
    if fields.get("responseMimeType") == "application/json":
        schema = fields.get("responseSchema")
        if schema is not None:
            check_schema(schema, "generation_config.response_schema")
        schema = schema if schema is not None else fields.get("responseJsonSchema")
        if schema is None:
            out["response_format"] = {"type": "json_object"}
        else:
            spec = {"name": "response", "schema": schema}
            out["response_format"] = {"type": "json_schema", "json_schema": spec}
    return out


def embed_inputs(body: Any, model: str, single: bool) -> dict[str, Any]:
    """An OpenAI embeddings body for `batchEmbedContents` (or `embedContent` if ``single``)."""
    allowed = {"model", "content", "taskType", "title", "outputDimensionality"}
    requests: Any
    if single:
        requests = [body]
    else:
        batch = _fields(body, frozenset({"requests"}), "")
        requests = batch.get("requests")
        if not isinstance(requests, list) or not requests:
            raise invalid_argument(
                "* BatchEmbedContentsRequest.requests: requests is not specified\n"
            )
    texts: list[str] = []
    dimensions: set[Any] = set()
    for i, raw in enumerate(requests):
        where = "" if single else f"requests[{i}]"
        request = _fields(raw, frozenset(allowed), where)
        named = request.get("model")
        if not single and named != f"models/{model}":
            raise invalid_argument(
                f"* BatchEmbedContentsRequest.{where}.model: unexpected model name format\n"
                if named is None
                else f"Model {named} in request does not match model models/{model} in path."
            )
        parts = _parts(
            _fields(request.get("content"), frozenset({"parts", "role"}), f"{where}content").get(
                "parts"
            ),
            "content",
        )
        texts.append(" ".join(p.get("text", "") for p in parts))
        dimensions.add(request.get("outputDimensionality"))
    out: dict[str, Any] = {"model": model, "input": texts}
    if len(dimensions) == 1 and (dim := dimensions.pop()) is not None:
        out["dimensions"] = dim
    return out

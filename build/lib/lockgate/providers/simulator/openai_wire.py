"""Chat Completions wire format: validate a request, plan the answer, render body or chunks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from lockgate.providers.simulator import content
from lockgate.providers.simulator.errors import (
    SimulatedError,
    content_filtered,
    context_length_exceeded,
    invalid_request,
    model_not_found,
)
from lockgate.providers.simulator.options import SimulatorOptions

SYSTEM_FINGERPRINT = "fp_lockgatesim"
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_TYPE_NAMES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
    type(None): "null",
}


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class ChoicePlan:
    """One choice: its tokens (content pieces, or argument pieces of a tool call)."""

    pieces: tuple[str, ...]
    finish_reason: str
    tool_call: ToolCall | None = None

    @property
    def text(self) -> str | None:
        return None if self.tool_call is not None else "".join(self.pieces)


@dataclass(slots=True)
class ChatPlan:
    model: str
    stream: bool
    include_usage: bool
    prompt_tokens: int
    max_tokens: int | None
    logprobs: bool = False
    top_logprobs: int = 0
    choices: list[ChoicePlan] = field(default_factory=list)

    @property
    def completion_tokens(self) -> int:
        return sum(len(c.pieces) for c in self.choices)


def type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), "an unknown type")


def _invalid_type(param: str, expected: str, value: Any) -> SimulatedError:
    return invalid_request(
        f"Invalid type for '{param}': expected {expected}, but got {type_name(value)} instead.",
        param,
        "invalid_type",
    )


def _int_field(body: dict[str, Any], name: str, low: int, high: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid_type(name, "an integer", value)
    if value < low:
        raise invalid_request(
            f"Invalid '{name}': integer below minimum value. Expected a value >= {low},"
            f" but got {value} instead.",
            name,
            "integer_below_min_value",
        )
    if high is not None and value > high:
        raise invalid_request(
            f"Invalid '{name}': integer above maximum value. Expected a value <= {high},"
            f" but got {value} instead.",
            name,
            "integer_above_max_value",
        )
    return value


def _bool_field(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _invalid_type(name, "a boolean", value)
    return value


def require_model(body: Any, options: SimulatorOptions) -> tuple[dict[str, Any], str]:
    """The body as an object and its ``model``; 400 when either is missing or mistyped,
    404 when ``options.models`` is set and does not list the model."""
    if not isinstance(body, dict):
        raise invalid_request(
            f"Invalid type for body: expected an object, but got {type_name(body)} instead.",
            None,
            "invalid_type",
        )
    model = body.get("model")
    if model is None:
        raise invalid_request(
            "you must provide a model parameter", "model", "missing_required_parameter"
        )
    if not isinstance(model, str):
        raise _invalid_type("model", "a string", model)
    if options.models is not None and model not in options.models:
        raise model_not_found(model)
    return body, model


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if messages is None:
        raise invalid_request(
            "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
        )
    if not isinstance(messages, list):
        raise _invalid_type("messages", "an array", messages)
    if not messages:
        raise invalid_request(
            "Invalid 'messages': empty array. Expected an array with minimum length 1,"
            " but got an empty array instead.",
            "messages",
            "empty_array",
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _invalid_type(f"messages[{i}]", "an object", message)
        role = message.get("role")
        if role is None:
            raise invalid_request(
                f"Missing required parameter: 'messages[{i}].role'.",
                f"messages[{i}].role",
                "missing_required_parameter",
            )
        if role not in ROLES:
            raise invalid_request(
                f"Invalid value: {role!r}. Supported values are: 'system', 'assistant',"
                " 'user', 'function', 'tool', and 'developer'.",
                f"messages[{i}].role",
                "invalid_value",
            )
    return messages


def _function_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _invalid_type("tools", "an array", tools)
    functions: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(tool, dict) and tool.get("type", "function") != "function":
            continue
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise invalid_request(
                f"Missing required parameter: 'tools[{i}].function.name'.",
                f"tools[{i}].function.name",
                "missing_required_parameter",
            )
        functions.append(function)
    return functions


def _chosen_tool(body: dict[str, Any], tools: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The function to call, or None when the answer should be text."""
    choice = body.get("tool_choice")
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        named = choice.get("function")
        name = named.get("name") if isinstance(named, dict) else None
        for tool in tools:
            if tool["name"] == name:
                return tool
    return tools[0]


def _response_format(body: dict[str, Any]) -> tuple[str, Any]:
    fmt = body.get("response_format")
    if not isinstance(fmt, dict):
        return "text", None
    kind = fmt.get("type")
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return "json_schema", schema if isinstance(schema, dict) else {}
    if kind == "json_object":
        return "json_object", None
    return "text", None


def _check_prompt(
    options: SimulatorOptions, messages: list[dict[str, Any]], prompt: int, cap: int | None
) -> None:
    window = options.context_window
    if window is not None and (prompt > window or (cap is not None and prompt + cap > window)):
        raise context_length_exceeded(window, prompt, cap if prompt <= window else None)
    phrase = options.content_filter_phrase
    if phrase is not None:
        needle = phrase.lower()
        if any(needle in text.lower() for text in content.prompt_texts(messages)):
            raise content_filtered()


def plan_chat(body: Any, options: SimulatorOptions, call_id: str) -> ChatPlan:
    """Validate a chat request and decide the whole answer (deterministic for a prompt)."""
    body, model = require_model(body, options)
    messages = _messages(body)
    n = _int_field(body, "n", 1, 128) or 1
    cap = _int_field(body, "max_completion_tokens", 1)
    if cap is None:
        cap = _int_field(body, "max_tokens", 1)
    stream = _bool_field(body, "stream")
    logprobs = _bool_field(body, "logprobs")
    top_logprobs = _int_field(body, "top_logprobs", 0, 20) or 0
    tools = _function_tools(body)
    stream_options = body.get("stream_options")
    include_usage = (
        stream and isinstance(stream_options, dict) and stream_options.get("include_usage") is True
    )
    prompt = content.prompt_tokens(messages, body.get("tools") if tools else None)
    _check_prompt(options, messages, prompt, cap)

    plan = ChatPlan(model, stream, include_usage, prompt, cap, logprobs, top_logprobs)
    count = options.completion_tokens if cap is None else min(options.completion_tokens, cap)
    finish = "length" if count < options.completion_tokens else "stop"
    last = messages[-1]
    last_text = content.text_of(last.get("content"))
    tool = None if last.get("role") == "tool" else _chosen_tool(body, tools)
    fmt, schema = _response_format(body)
    seed = content.seed_of(last_text)
    for index in range(n):
        if tool is not None:
            value = content.placeholder(tool.get("parameters"), required_only=True)
            arguments = orjson.dumps(value if isinstance(value, dict) else {}).decode()
            call = ToolCall(f"{call_id}{index}", tool["name"], arguments)
            plan.choices.append(ChoicePlan(content.slices(arguments, 8), "tool_calls", call))
        elif last.get("role") == "tool":
            pieces = content.tool_result_pieces(last_text, count)
            plan.choices.append(ChoicePlan(pieces, finish))
        elif fmt == "json_schema":
            text = orjson.dumps(content.placeholder(schema)).decode()
            plan.choices.append(ChoicePlan(content.slices(text), "stop"))
        elif fmt == "json_object":
            plan.choices.append(ChoicePlan(content.json_reply_pieces(seed + index, count), finish))
        else:
            plan.choices.append(ChoicePlan(content.reply_pieces(seed + index, count), finish))
    return plan


def usage(plan: ChatPlan) -> dict[str, Any]:
    completion = plan.completion_tokens
    return {
        "prompt_tokens": plan.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": plan.prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _tool_call_json(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def completion_body(plan: ChatPlan, completion_id: str, created: int) -> bytes:
    """The non-streaming ``chat.completion`` object."""
    choices: list[dict[str, Any]] = []
    for index, choice in enumerate(plan.choices):
        message: dict[str, Any] = {
            "role": "assistant",
            "content": choice.text,
            "refusal": None,
            "annotations": [],
        }
        logprobs: dict[str, Any] | None = None
        if choice.tool_call is not None:
            message["tool_calls"] = [_tool_call_json(choice.tool_call)]
        elif plan.logprobs:
            entries = content.logprob_entries(choice.pieces, plan.top_logprobs)
            logprobs = {"content": entries, "refusal": None}
        choices.append(
            {
                "index": index,
                "message": message,
                "logprobs": logprobs,
                "finish_reason": choice.finish_reason,
            }
        )
    return orjson.dumps(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": plan.model,
            "choices": choices,
            "usage": usage(plan),
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
    )

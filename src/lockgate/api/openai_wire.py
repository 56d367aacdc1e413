"""OpenAI request bodies -> internal requests: read, size-limit, parse, validate what we need.

Only what the gateway itself relies on is checked; every other field passes through.
"""

from __future__ import annotations

from typing import Any

import orjson

from lockgate.api.exchange import Exchange
from lockgate.core.errors import BadRequest
from lockgate.core.types import JSON, CacheControl, ChatRequest, EmbeddingRequest

_POSITIVE_INTS = ("max_tokens", "max_completion_tokens", "n")


async def read_json(ex: Exchange, limit: int) -> JSON:
    """The body as a JSON object: 413 beyond ``limit`` bytes, 400 when it is not one."""
    raw = await ex.read(limit)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(
            "We could not parse the JSON body of your request: "
            f"{exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.", code="invalid_type")
    return body


def parse_chat(body: JSON) -> ChatRequest:
    model = _model(body)
    messages = body.get("messages")
    if messages is None:
        raise _missing("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest(
            "'messages' must be a non-empty array.", param="messages", code="invalid_value"
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _type(f"messages[{i}]", "an object")
        if not isinstance(message.get("role"), str):
            raise _missing(f"messages[{i}].role")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _type("stream", "a boolean")
    for name in _POSITIVE_INTS:
        value = body.get(name)
        if value is not None and (not _is_int(value) or value < 1):
            raise BadRequest(
                f"'{name}' must be an integer of at least 1.", param=name, code="invalid_value"
            )
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise _type("stream_options", "an object")
    include_usage = bool(options and options.get("include_usage"))
    return ChatRequest(
        body=body,
        model=model,
        stream=bool(stream),
        include_usage=include_usage,
        fallbacks=_fallbacks(body),
        cache=_cache(body),
    )


_CACHE_FLAGS = ("no_cache", "no_store", "off", "on")


def _cache(body: JSON) -> CacheControl | None:
    """The gateway's own `cache` field (sent with `extra_body`); never sent upstream:
    {"no_cache", "no_store", "off", "on": booleans, "ttl": seconds, "namespace": name}."""
    if "cache" not in body:
        return None
    value = body.pop("cache")
    if not isinstance(value, dict):
        raise _type("cache", "an object")
    unknown = set(value) - {*_CACHE_FLAGS, "ttl", "namespace"}
    if unknown:
        raise BadRequest(
            f"Unknown field in 'cache': {sorted(unknown)[0]!r}.",
            param="cache",
            code="invalid_value",
        )
    for flag in _CACHE_FLAGS:
        if not isinstance(value.get(flag, False), bool):
            raise _type(f"cache.{flag}", "a boolean")
    ttl = value.get("ttl")
    if ttl is not None and (not isinstance(ttl, int | float) or isinstance(ttl, bool) or ttl < 0):
        raise _type("cache.ttl", "a number of seconds")
    namespace = value.get("namespace")
    if namespace is not None and (not isinstance(namespace, str) or not 0 < len(namespace) <= 128):
        raise _type("cache.namespace", "a name of 1-128 characters")
    off = value.get("off", False)
    return CacheControl(
        lookup=not off and not value.get("no_cache", False),
        store=not off and not value.get("no_store", False),
        force=value.get("on", False),
        ttl=float(ttl) if ttl is not None else None,
        namespace=namespace,
    )


def _fallbacks(body: JSON) -> tuple[str, ...] | None:
    """The gateway's own `fallbacks` field (sent with `extra_body`); never sent upstream."""
    if "fallbacks" not in body:
        return None
    value = body.pop("fallbacks")
    if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
        raise _type("fallbacks", "an array of model names")
    return tuple(value)


def parse_embeddings(body: JSON) -> EmbeddingRequest:
    model = _model(body)
    if "input" not in body:
        raise _missing("input")
    data = body["input"]
    if isinstance(data, str):
        ok = True
    elif isinstance(data, list) and data:
        ok = (
            all(isinstance(x, str) for x in data)
            or all(_is_int(x) for x in data)
            or all(isinstance(x, list) and x and all(_is_int(t) for t in x) for x in data)
        )
    else:
        ok = False
    if not ok:
        raise BadRequest(
            "'input' must be a string, an array of strings, or an array of token arrays.",
            param="input",
            code="invalid_value",
        )
    return EmbeddingRequest(body=body, model=model)


def _model(body: JSON) -> str:
    model = body.get("model")
    if model is None:
        raise _missing("model")
    if not isinstance(model, str) or not model:
        raise _type("model", "a non-empty string")
    return model


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _missing(param: str) -> BadRequest:
    return BadRequest(
        f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def _type(param: str, what: str) -> BadRequest:
    return BadRequest(f"'{param}' must be {what}.", param=param, code="invalid_type")

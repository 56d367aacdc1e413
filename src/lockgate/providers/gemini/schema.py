"""JSON Schema (what OpenAI tools and `response_format` carry) -> the OpenAPI subset Gemini takes.

Gemini's `Schema` object (function `parameters`, `responseSchema`) accepts a fixed set of
keys and answers 400 "Unknown name" to any other, so the conversion keeps the keys it knows
and rewrites the JSON Schema idioms it does not: `$ref`/`$defs` are inlined, `type: [T,
"null"]` and `anyOf [..., {"type": "null"}]` become `nullable`, `const` becomes a one-value
`enum`, `oneOf` becomes `anyOf`, an `allOf` is merged. Everything else (e.g.
`additionalProperties`, `$schema`, `patternProperties`, `examples`) is dropped.
"""

from __future__ import annotations

from typing import Any

from lockgate.core.errors import BadRequest

# The keys of Gemini's Schema object (ai.google.dev/api/caching#Schema).
SCHEMA_KEYS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "anyOf",
        "propertyOrdering",
        "default",
        "items",
        "minimum",
        "maximum",
    }
)
# Formats Gemini accepts per type; any other format is dropped rather than refused.
_FORMATS = {
    "string": {"enum", "date-time"},
    "number": {"float", "double"},
    "integer": {"int32", "int64"},
}
_MAX_DEPTH = 32  # deeper than this is a recursive $ref, which Gemini's Schema cannot express


def to_gemini_schema(schema: Any, *, param: str) -> dict[str, Any]:
    """The Gemini form of a JSON Schema object; ``param`` names it in a 400."""
    if not isinstance(schema, dict):
        raise BadRequest(f"'{param}' must be a JSON Schema object", param=param)
    defs = {**_defs(schema, "definitions"), **_defs(schema, "$defs")}
    return _convert(schema, defs, param, 0)


def _defs(schema: dict[str, Any], key: str) -> dict[str, Any]:
    found = schema.get(key)
    return found if isinstance(found, dict) else {}


def _resolve(ref: Any, defs: dict[str, Any], param: str) -> dict[str, Any]:
    if isinstance(ref, str):
        for prefix in ("#/$defs/", "#/definitions/"):
            if ref.startswith(prefix) and isinstance(defs.get(ref[len(prefix) :]), dict):
                target: dict[str, Any] = defs[ref[len(prefix) :]]
                return target
    raise BadRequest(f"'{param}': cannot resolve $ref {ref!r} for Gemini", param=param)


def _convert(
    schema: dict[str, Any], defs: dict[str, Any], param: str, depth: int
) -> dict[str, Any]:
    if depth > _MAX_DEPTH:
        raise BadRequest(f"'{param}': the schema is recursive or too deep for Gemini", param=param)
    if "$ref" in schema:
        merged = {**_resolve(schema["$ref"], defs, param), **schema}
        merged.pop("$ref")
        return _convert(merged, defs, param, depth + 1)
    if isinstance(schema.get("allOf"), list):
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            if isinstance(part, dict):
                merged = _merge(merged, _convert(part, defs, param, depth + 1))
        return _convert(merged, defs, param, depth + 1)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("anyOf", "oneOf") and isinstance(value, list):
            _alternatives(out, value, defs, param, depth)
        elif key == "const":
            out.setdefault("enum", [value])
        elif key in SCHEMA_KEYS:
            out[key] = value
    _fix_type(out)
    if isinstance(out.get("properties"), dict):
        out["properties"] = {
            name: _convert(sub, defs, param, depth + 1) if isinstance(sub, dict) else sub
            for name, sub in out["properties"].items()
        }
    if isinstance(out.get("items"), dict):
        out["items"] = _convert(out["items"], defs, param, depth + 1)
    if "enum" in out and not all(isinstance(v, str) for v in out["enum"] or ()):
        # Gemini's enum is for strings only; a numeric enum stays a plain number.
        del out["enum"]
    if out.get("enum") is not None and "type" not in out:
        out["type"] = "string"
    fmt = out.get("format")
    if fmt is not None and fmt not in _FORMATS.get(str(out.get("type")), set()):
        del out["format"]
    return out


def _alternatives(
    out: dict[str, Any], options: list[Any], defs: dict[str, Any], param: str, depth: int
) -> None:
    kept = [o for o in options if isinstance(o, dict) and o.get("type") != "null"]
    if len(kept) < len(options):
        out["nullable"] = True
    converted = [_convert(o, defs, param, depth + 1) for o in kept]
    if len(converted) == 1:
        out.update({k: v for k, v in converted[0].items() if k not in out})
    elif converted:
        out["anyOf"] = converted


def _fix_type(out: dict[str, Any]) -> None:
    kind = out.get("type")
    if isinstance(kind, list):
        named = [t for t in kind if t != "null"]
        if len(named) < len(kind):
            out["nullable"] = True
        if len(named) == 1:
            out["type"] = named[0]
        else:
            del out["type"]
            if named:
                out["anyOf"] = [{"type": t} for t in named]


def _merge(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    merged = {**left, **right}
    if isinstance(left.get("properties"), dict) and isinstance(right.get("properties"), dict):
        merged["properties"] = {**left["properties"], **right["properties"]}
    if isinstance(left.get("required"), list) and isinstance(right.get("required"), list):
        merged["required"] = list(dict.fromkeys([*left["required"], *right["required"]]))
    return merged

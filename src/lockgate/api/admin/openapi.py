"""The admin API's OpenAPI 3.1 document, built from the route table and pydantic models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from lockgate import __version__
from lockgate.api.admin.common import Route

_PARAM = re.compile(r"{(\w+)(?::[^}]*)?}")
_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                k: {"type": ["string", "null"]} for k in ("message", "type", "param", "code")
            },
        }
    },
}


def _ref(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        schemas[name] = sub
    schemas[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def document(routes: list[Route]) -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": _ERROR}
    paths: dict[str, Any] = {}
    for route in routes:
        path = _PARAM.sub(r"{\1}", route.path)
        params = [
            {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
            for n in _PARAM.findall(route.path)
        ]
        params += [{"name": n, "in": "query", "schema": {"type": "string"}} for n in route.query]
        created = route.summary.startswith("Create") or "returned once" in route.summary
        answer = _json(_ref(route.response, schemas)) if route.response else {}
        error = _json({"$ref": "#/components/schemas/Error"})
        op: dict[str, Any] = {
            "summary": route.summary,
            "security": [{"master_key": []}],
            "responses": {
                "201" if created else "200": {"description": "OK", **answer},
                "400": {"description": "Invalid request", **error},
                "401": {"description": "No or wrong key", **error},
                "403": {"description": "Not the master key", **error},
                "404": {"description": "Not found", **error},
            },
        }
        if params:
            op["parameters"] = params
        if route.body is not None:
            op["requestBody"] = {"required": True, **_json(_ref(route.body, schemas))}
        paths.setdefault(path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "lockgate admin API", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"master_key": {"type": "http", "scheme": "bearer"}},
        },
    }

"""Every /api answer the tests see is checked against the OpenAPI document (GET /openapi.json): the document is
the schema of the JSON API, so a field that changes shape, or an internal counter name that leaks, fails here."""
from __future__ import annotations

import json
import re
from functools import cache
from urllib.parse import urlsplit

import jsonschema

from chalicelib.reports import openapi

seen: set[str] = set()  # the /api path templates whose answers were checked


@cache
def _operations() -> list[tuple[re.Pattern, str, dict]]:
    """(path pattern, template, the 200 answer's schema with the document's components) per GET /api route."""
    document = openapi.document()
    out = []
    for template, methods in document["paths"].items():
        if not template.startswith("/api/") or "get" not in methods:
            continue
        schema = methods["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        pattern = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")
        out.append((pattern, template, {**schema, "components": document["components"]}))
    return sorted(out, key=lambda op: op[1].count("{"))  # a fixed path before a templated one


def check(method: str, url: str, status: int, body: bytes | str | None) -> None:
    """Validate a 200 answer to GET /api/…; anything else passes (errors have their own tests)."""
    path = urlsplit(url).path
    if method.upper() != "GET" or status != 200 or not path.startswith("/api/") or path == "/api/export":
        return  # /api/export answers a download (CSV, JSON), not a JSON API answer
    for pattern, template, schema in _operations():
        if pattern.match(path):
            jsonschema.validate(json.loads(body), schema, cls=jsonschema.Draft202012Validator)
            seen.add(template)
            return
    raise AssertionError(f"GET {path} answered 200 but the OpenAPI document has no such route")

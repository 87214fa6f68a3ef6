"""``GET /openapi.json``: the OpenAPI 3.1 description of the client and admin APIs.

The document is data (``openapi.yaml`` beside this module, shipped in the wheel), read
once when the routes are added and served as bytes. tests/server/test_openapi.py compares
its paths and methods with the routes the application registers, so it cannot drift from
the code; tests/e2e/test_schemathesis.py fuzzes a live gateway from it.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import yaml
from aiohttp import web

from tokenyard.wire.json import dumps

METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})


def document() -> dict[str, Any]:
    """The OpenAPI document as a mapping."""
    text = files(__package__).joinpath("openapi.yaml").read_text(encoding="utf-8")
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    """Every ``(METHOD, path)`` the document describes."""
    return {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method in METHODS
    }


def add_routes(app: web.Application) -> None:
    body = dumps(document())

    async def openapi(_request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app.router.add_get("/openapi.json", openapi)

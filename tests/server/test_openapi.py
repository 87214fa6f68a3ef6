"""The OpenAPI document (server/openapi.yaml) describes exactly the routes the application
registers, and is a valid OpenAPI 3.1 document: it cannot drift from the code."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from tests.server.built import built_app
from tokenyard.server.openapi import document, operations

UNDESCRIBED = ("/ui",)
"""The dashboard's HTML pages and forms are not an API: left out of the document."""


def config_text(directory: Path) -> str:
    return f"""
database: sqlite:///{directory / "openapi.db"}
admin_key: admin-key-openapi
providers:
  p: {{api: openai, base_url: "http://127.0.0.1:9/v1", keys: [{{key: sk-openapi}}]}}
models:
  m:
    deployments: [{{provider: p, model: x, price: {{input: 1}}}}]
"""


async def registered(directory: Path) -> set[tuple[str, str]]:
    """Every (METHOD, path) of the real application, as ``build_app`` wires it."""
    async with built_app(config_text(directory)) as app:
        routes = set()
        for route in app.router.routes():
            path = route.resource.canonical if route.resource is not None else ""
            if route.method == "HEAD" or path.startswith(UNDESCRIBED):
                continue  # aiohttp adds HEAD beside every GET
            routes.add((route.method, re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)))
        return routes


def test_the_document_describes_every_route_and_no_other(tmp_path: Path) -> None:
    assert operations(document()) == asyncio.run(registered(tmp_path))


def test_the_document_is_valid_openapi_31() -> None:
    # The OpenAPI 3.1 meta-schema, as schemathesis ships it for its own loading.
    from schemathesis.openapi import from_dict
    from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

    doc = document()
    assert doc["openapi"].startswith("3.1")
    assert [error.message for error in OPENAPI_31_VALIDATOR.iter_errors(doc)] == []
    labels = {op.ok().label for op in from_dict(doc).get_all_operations()}  # each resolves
    assert len(labels) == len(operations(doc))


@pytest.mark.parametrize(
    ("path", "scheme"),
    [("/v1/chat/completions", "clientKey"), ("/admin/keys", "adminKey")],
)
def test_client_and_admin_routes_name_their_key(path: str, scheme: str) -> None:
    doc = document()
    operation = doc["paths"][path]["post"]
    security = operation.get("security", doc["security"])
    assert {name for requirement in security for name in requirement} >= {scheme}
    assert doc["components"]["securitySchemes"][scheme]["scheme"] == "bearer"

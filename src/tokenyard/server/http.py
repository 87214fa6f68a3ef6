"""Small pieces every route uses: JSON in and out, credentials, headers."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tokenyard.errors import InvalidRequest, RequestTooLarge
from tokenyard.server.state import MAX_BODY
from tokenyard.wire.json import JSONDecodeError, JSONObject, dumps, loads

REQUEST_ID = "x-tokenyard-request-id"
REQUEST_ID_KEY = web.RequestKey("request_id", str)
"""Where the edge middleware keeps the request's id (the header's value)."""


def json_response(
    body: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=dumps(body), status=status, headers=headers, content_type="application/json"
    )


async def read_json(request: web.Request) -> JSONObject:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise RequestTooLarge(
            f"the request body is larger than {request.app[MAX_BODY]} bytes"
        ) from None
    try:
        body = loads(raw)
    except JSONDecodeError:
        raise InvalidRequest("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return body


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None
    return request.headers.get("x-api-key")

"""Small pieces every route uses: JSON in and out, credentials, headers, and the limits of
``server:`` on what one request may send."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from tokenyard.errors import InvalidRequest, RequestTimeout, RequestTooLarge
from tokenyard.server.limits import ServerLimits
from tokenyard.server.state import LIMITS
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


async def read_body(request: web.Request) -> bytes:
    """The whole body, within the limits of size (413) and time (408)."""
    limits = request.app[LIMITS]
    try:
        if request.content.is_eof():  # all of it is here (most requests): nothing to time
            return await request.read()
        async with asyncio.timeout(limits.body_timeout_s):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large(limits) from None
    except TimeoutError:
        raise too_slow(limits) from None


def too_large(limits: ServerLimits) -> RequestTooLarge:
    return RequestTooLarge(f"the request body is larger than {limits.max_body_bytes} bytes")


def too_slow(limits: ServerLimits) -> RequestTimeout:
    return RequestTimeout(f"the request body did not arrive within {limits.body_timeout_s:g} s")


LINGER_S = 10.0
"""After an early answer (408, 413, 401) the rest of the body is read and dropped for at
most this long (or ``body_timeout_s`` when shorter), so that the client reads the answer
rather than a reset; then the connection is cut. aiohttp's default lingering time."""


def linger_s(limits: ServerLimits) -> float:
    return min(LINGER_S, limits.body_timeout_s)


async def read_json(request: web.Request) -> JSONObject:
    """The body as a JSON object, within the limits: size (413), time (408), nesting (400)."""
    return parse_json(await read_body(request), request.app[LIMITS])


def parse_json(raw: bytes, limits: ServerLimits) -> JSONObject:
    """A body as a JSON object within ``limits`` on nesting (400). Invalid UTF-8 and lone
    surrogates are malformed JSON to the codec (400)."""
    try:
        body = loads(raw)
    except JSONDecodeError:
        raise InvalidRequest("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    # No object or array can be deeper than the number of brackets: most bodies need no walk.
    if raw.count(b"{") + raw.count(b"[") > limits.max_json_depth and _deeper_than(
        body, limits.max_json_depth
    ):
        raise InvalidRequest(
            f"the request body nests arrays and objects deeper than {limits.max_json_depth}"
        )
    return body


def _deeper_than(body: JSONObject, limit: int) -> bool:
    """Whether objects and arrays nest more than ``limit`` deep (iterative: no recursion
    on what a client sent)."""
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(body, 1)]
    while stack:
        node, depth = stack.pop()
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False


def check_messages(request: web.Request, body: JSONObject) -> None:
    check_message_count(request.app[LIMITS], body)


def check_message_count(limits: ServerLimits, body: JSONObject) -> None:
    """At most ``server.max_messages`` chat messages (the rest is checked with the chat)."""
    messages = body.get("messages")
    limit = limits.max_messages
    if isinstance(messages, list) and len(messages) > limit:
        raise InvalidRequest(
            f"messages has {len(messages)} entries; at most {limit} are accepted",
            param="messages",
        )


def bearer(request: web.Request) -> str | None:
    return credential(request.headers)


def credential(headers: Mapping[str, str]) -> str | None:
    """The credential of ``Authorization: Bearer`` or ``x-api-key``. Keys are ASCII: any
    other text cannot match one and is passed on as an empty, invalid credential."""
    header = headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        found = token.strip() if scheme.lower() == "bearer" else None
    else:
        found = headers.get("x-api-key")
    return found if found is None or found.isascii() else ""

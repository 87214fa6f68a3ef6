"""Request ids and the one place errors become responses (OpenAI shape, never a trace)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

from tokenyard.errors import (
    MethodNotAllowed,
    NotFound,
    RateLimited,
    RequestTooLarge,
    TokenyardError,
    UpstreamError,
)
from tokenyard.server.http import REQUEST_ID, json_response

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_INTERNAL = {
    "error": {
        "message": "internal error",
        "type": "server_error",
        "param": None,
        "code": "internal_error",
    }
}


def error_response(exc: TokenyardError, request_id: str) -> web.Response:
    headers = {REQUEST_ID: request_id}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after_s)
    elif isinstance(exc, UpstreamError) and exc.status in (429, 503) and exc.retry_after_s:
        headers["Retry-After"] = str(int(exc.retry_after_s + 0.999))
    return json_response(exc.body(), status=exc.status, headers=headers)


def _from_http(exc: web.HTTPException) -> TokenyardError:
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return RequestTooLarge("the request body is too large")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return MethodNotAllowed(f"method {exc.method} is not allowed here")
    return NotFound("no such route")


@web.middleware
async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = "req_" + secrets.token_hex(12)
    request["request_id"] = request_id
    try:
        response = await handler(request)
    except TokenyardError as exc:
        if exc.status >= 500:
            log.warning(
                "request failed",
                extra={
                    "fields": {"request_id": request_id, "status": exc.status, "code": exc.code}
                },
            )
        return error_response(exc, request_id)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(_from_http(exc), request_id)
    except Exception:
        log.exception("unhandled error", extra={"fields": {"request_id": request_id}})
        return json_response(_INTERNAL, status=500, headers={REQUEST_ID: request_id})
    if not response.prepared:
        response.headers[REQUEST_ID] = request_id
    return response

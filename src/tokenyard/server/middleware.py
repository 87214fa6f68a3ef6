"""Request ids, the request's record, and errors made responses (OpenAI shape, never a
trace): aiohttp's middleware, and the pieces the gateway's own server (server/native/)
uses for the same."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from tokenyard.errors import (
    MethodNotAllowed,
    NotFound,
    RateLimited,
    RequestTooLarge,
    TokenyardError,
    UpstreamError,
)
from tokenyard.identity.service import Principal
from tokenyard.obs.record import CURRENT, RequestRecord, Sink, current
from tokenyard.server.http import REQUEST_ID, REQUEST_ID_KEY, json_response
from tokenyard.server.state import SINKS

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

INTERNAL = {
    "error": {
        "message": "internal error",
        "type": "server_error",
        "param": None,
        "code": "internal_error",
    }
}


def error_headers(exc: TokenyardError, request_id: str) -> dict[str, str]:
    headers = {REQUEST_ID: request_id}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after_s)
    elif isinstance(exc, UpstreamError) and exc.status in (429, 503) and exc.retry_after_s:
        headers["Retry-After"] = str(int(exc.retry_after_s + 0.999))
    return headers


def error_response(exc: TokenyardError, request_id: str) -> web.Response:
    return json_response(exc.body(), status=exc.status, headers=error_headers(exc, request_id))


def failed(exc: TokenyardError, request_id: str) -> None:
    """An error is the answer: the record says so, and the log too when it is ours (5xx)."""
    note_error(exc)
    if exc.status >= 500:
        log.warning(
            "request failed",
            extra={"fields": {"request_id": request_id, "status": exc.status, "code": exc.code}},
        )


def crashed(request_id: str) -> None:
    """A bug: logged with its trace (called from ``except``); the answer is ``INTERNAL``."""
    log.exception("unhandled error", extra={"fields": {"request_id": request_id}})
    record = current()
    if record is not None:
        record.fail("server_error", "internal_error")


def _from_http(exc: web.HTTPException) -> TokenyardError:
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return RequestTooLarge("the request body is too large")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return MethodNotAllowed(f"method {exc.method} is not allowed here")
    return NotFound("no such route")


RECORDED = {
    "/v1/chat/completions": "chat",
    "/v1/embeddings": "embeddings",
    "/v1/messages": "messages",
}
"""The client API paths whose requests are recorded (metrics, request log, traces)."""


def new_request_id() -> str:
    """``req_``, the time in milliseconds (12 hex digits), then 64 random bits.

    The id is the primary key of the request's reservation and log row and the reference of
    its ledger charge. Ids that grow with time are appended at the right edge of those
    indexes, so a commit writes one leaf page of each, where random ids wrote one page per
    request, and the checkpoint copies as few back (docs/benchmarks.md, session 7). The
    random part is what ``secrets.token_hex(8)`` returns, without its two Python calls."""
    return f"req_{time.time_ns() // 1_000_000:012x}{os.urandom(8).hex()}"  # secrets.token_hex


@web.middleware
async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = new_request_id()
    request[REQUEST_ID_KEY] = request_id
    operation = RECORDED.get(request.path)
    if operation is None:
        return await _answer(request, handler, request_id)
    with Recording(request_id, operation, request.headers, request.app.get(SINKS)) as recording:
        response = await _answer(request, handler, request_id)
        recording.record.finish(response.status)
        return response


class Recording:
    """The record of one client API request (obs/record.py), current while it is handled:
    what happened is put into it on the way, and it goes to the sinks (metrics, request log,
    traces) once the request is over, on the loop's next turn so no sink delays the answer.
    The caller finishes it with the status it answered; ending with an exception (cancelled:
    the client hung up, or the shutdown ended the stream) finishes it here."""

    __slots__ = ("_sinks", "_token", "record")

    def __init__(
        self,
        request_id: str,
        operation: str,
        headers: Mapping[str, str],
        sinks: list[Sink] | None,
    ) -> None:
        self.record = RequestRecord(request_id, operation)
        self.record.traceparent = headers.get("traceparent")  # a trace span's parent
        self.record.tracestate = headers.get("tracestate")
        self._sinks = sinks

    def __enter__(self) -> Recording:
        self._token = CURRENT.set(self.record)
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        record = self.record
        if kind is not None:
            if record.ttft_ms is None:
                record.finish(499)  # before an answer (nginx's number for it)
            else:  # during a stream: its 200 went out, the rest did not
                if record.error_type is None:  # an error the stream was ended with stands
                    record.fail("client_disconnected", None)
                record.finish(200)
        CURRENT.reset(self._token)
        if self._sinks:
            asyncio.get_running_loop().call_soon(_emit, self._sinks, record)


def _emit(sinks: list[Sink], record: RequestRecord) -> None:
    for sink in sinks:
        try:
            sink.emit(record)
        except Exception:
            log.exception("a request record sink failed")


def note_caller(principal: Principal) -> Principal:
    """Put who is calling into the request's record (the key's visible prefix only)."""
    record = current()
    if record is not None:
        record.account_id = principal.account_id
        record.key_id = principal.key_id
        record.key_prefix = principal.prefix
    return principal


def note_request(model: str, *, stream: bool) -> None:
    record = current()
    if record is not None:
        record.requested_model, record.stream = model, stream


def note_first_byte() -> None:
    record = current()
    if record is not None:
        record.first_byte()


def note_client_left() -> None:
    record = current()
    if record is not None:
        record.fail("client_disconnected", None)


def note_error(exc: TokenyardError) -> None:
    """Put an error that becomes the answer (or ends a stream) into the request's record."""
    record = current()
    if record is not None:
        record.fail(exc.type, exc.code)


async def _answer(request: web.Request, handler: Handler, request_id: str) -> web.StreamResponse:
    try:
        response = await handler(request)
    except TokenyardError as exc:
        failed(exc, request_id)
        return error_response(exc, request_id)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(_from_http(exc), request_id)
    except Exception:
        crashed(request_id)
        return json_response(INTERNAL, status=500, headers={REQUEST_ID: request_id})
    if not response.prepared:
        response.headers[REQUEST_ID] = request_id
    return response

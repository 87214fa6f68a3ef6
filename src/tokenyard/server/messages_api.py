"""``POST /v1/messages``: the Anthropic Messages API in front of every model.

The request is translated to the canonical (OpenAI) form, runs through the same flow as a
chat completion — scopes, limits, holds, failover, charges, headers — and the answer or
the stream is translated back. Errors are Anthropic-shaped.
"""

from __future__ import annotations

from aiohttp import web

from tokenyard.errors import RateLimited, TokenyardError
from tokenyard.gateway.request import ChatRequest
from tokenyard.identity.service import Principal
from tokenyard.obs.record import current
from tokenyard.routing.catalog import PublicModel
from tokenyard.server.client_api import served_headers
from tokenyard.server.generation import generation_of
from tokenyard.server.http import (
    REQUEST_ID,
    REQUEST_ID_KEY,
    bearer,
    check_messages,
    json_response,
    read_json,
)
from tokenyard.server.middleware import (
    note_caller,
    note_client_left,
    note_error,
    note_first_byte,
    note_request,
)
from tokenyard.server.state import IDENTITY
from tokenyard.wire.anthropic import (
    StreamTranslator,
    anthropic_error,
    chat_to_message,
    messages_to_chat,
)
from tokenyard.wire.json import JSONDecodeError, JSONObject, loads


async def messages(request: web.Request) -> web.StreamResponse:
    try:
        return await _messages(request)
    except TokenyardError as exc:
        note_error(exc)
        headers = {REQUEST_ID: request[REQUEST_ID_KEY]}
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(exc.retry_after_s)
        return json_response(
            anthropic_error(exc.status, exc.message), status=exc.status, headers=headers
        )


async def _messages(request: web.Request) -> web.StreamResponse:
    principal = note_caller(await request.app[IDENTITY].authenticate(bearer(request)))
    body = await read_json(request)
    check_messages(request, body)
    gateway = generation_of(request).gateway
    chat, model = await gateway.parse_chat(principal, messages_to_chat(body))
    note_request(chat.model, stream=chat.stream)
    request_id = request[REQUEST_ID_KEY]
    if gateway.speaks_messages(chat, model):
        return await _passthrough(request, principal, chat, model, body)
    if not chat.stream:
        done = await gateway.complete(request_id, principal, chat, model)
        headers = served_headers(request, done.served)
        headers["x-tokenyard-cost"] = done.served.cost
        return json_response(chat_to_message(done.body, model=model.name), headers=headers)

    relay = await gateway.stream(request_id, principal, chat, model)
    response = web.StreamResponse(
        headers={
            **served_headers(request, relay.served),
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    translator = StreamTranslator(model=model.name, message_id="msg_" + request_id[4:])
    payloads = relay.payloads()
    try:
        await response.prepare(request)
        async for payload in payloads:
            note_first_byte()
            for event in translator.feed(loads(payload)):
                await response.write(event)
        if relay.failure is not None:
            note_error(relay.failure)
            for event in translator.error(relay.failure.message, "overloaded_error"):
                await response.write(event)
        else:
            usage = relay.usage().to_openai()
            usage["cost"] = float(relay.served.cost)
            for event in translator.finish(usage):
                await response.write(event)
    except ConnectionResetError:  # the client left: closing the payloads closes the
        note_client_left()  # upstream and charges
    except TokenyardError as exc:  # the charge could not be committed: no message_stop
        note_error(exc)
        for event in translator.error(exc.message):
            await response.write(event)
    finally:
        await payloads.aclose()
        await relay.aclose()
    return response


_CLIENT_HEADERS = ("anthropic-version", "anthropic-beta")


async def _passthrough(
    request: web.Request,
    principal: Principal,
    chat: ChatRequest,
    model: PublicModel,
    body: JSONObject,
) -> web.StreamResponse:
    """Anthropic upstreams get the client's body untouched (see gateway/passthrough.py)."""
    headers = {h: request.headers[h] for h in _CLIENT_HEADERS if h in request.headers}
    served, answer = await generation_of(request).gateway.messages_passthrough(
        request[REQUEST_ID_KEY], principal, request=chat, model=model, raw=body, headers=headers
    )
    record = current()
    record = record if record is not None and record.capture else None
    if isinstance(answer, bytes):
        if record is not None:
            record.keep_completion(_message_text(answer))
        out = served_headers(request, served)
        out["x-tokenyard-cost"] = served.cost
        return web.Response(body=answer, content_type="application/json", headers=out)
    response = web.StreamResponse(
        headers={
            **served_headers(request, served),
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
        }
    )
    text: list[str] = []
    try:
        await response.prepare(request)
        async for line in answer:
            note_first_byte()
            if record is not None and b'"text_delta"' in line:
                text.append(_delta_text(line))
            await response.write(line)
    except ConnectionResetError:  # the client left: closing the relay closes the upstream
        note_client_left()  # and charges
    finally:
        await answer.aclose()
        if record is not None:
            record.keep_completion("".join(text))
    return response


def _message_text(body: bytes) -> str | None:
    """The text blocks of an Anthropic message, for the request log."""
    try:
        message = loads(body)
    except JSONDecodeError:
        return None
    blocks = message.get("content") if isinstance(message, dict) else None
    if not isinstance(blocks, list):
        return None
    return "".join(
        b["text"] for b in blocks if isinstance(b, dict) and isinstance(b.get("text"), str)
    )


def _delta_text(line: bytes) -> str:
    """The text of a ``content_block_delta`` event's data line."""
    if not line.startswith(b"data:"):
        return ""
    try:
        delta = loads(line[5:].strip()).get("delta")
    except (JSONDecodeError, AttributeError):
        return ""
    text = delta.get("text") if isinstance(delta, dict) else None
    return text if isinstance(text, str) else ""


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/messages", messages)

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
from tokenyard.server.client_api import answer_headers
from tokenyard.server.exchange import AiohttpExchange, Exchange
from tokenyard.server.http import REQUEST_ID, check_message_count, credential
from tokenyard.server.middleware import (
    note_caller,
    note_client_left,
    note_error,
    note_first_byte,
    note_request,
)
from tokenyard.server.state import IDENTITY, LIMITS
from tokenyard.wire.anthropic import (
    StreamTranslator,
    anthropic_error,
    chat_to_message,
    messages_to_chat,
)
from tokenyard.wire.json import JSONDecodeError, JSONObject, loads


async def messages(request: web.Request) -> web.StreamResponse:
    exchange = AiohttpExchange(request)
    await anthropic_messages(exchange)
    return exchange.answered()


async def anthropic_messages(exchange: Exchange) -> None:
    """``POST /v1/messages`` on either HTTP server (server/exchange.py)."""
    try:
        await _messages(exchange)
    except TokenyardError as exc:
        note_error(exc)
        headers = {REQUEST_ID: exchange.request_id}
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(exc.retry_after_s)
        exchange.answer(anthropic_error(exc.status, exc.message), headers, exc.status)


async def _messages(exchange: Exchange) -> None:
    app = exchange.app
    principal = note_caller(await app[IDENTITY].authenticate(credential(exchange.headers)))
    body = await exchange.json()
    check_message_count(app[LIMITS], body)
    gateway = exchange.generation.gateway
    chat, model = await gateway.parse_chat(principal, messages_to_chat(body))
    note_request(chat.model, stream=chat.stream)
    request_id = exchange.request_id
    if gateway.speaks_messages(chat, model):
        await _passthrough(exchange, principal, chat, model, body)
        return
    if not chat.stream:
        done = await gateway.complete(request_id, principal, chat, model)
        headers = answer_headers(request_id, done.served)
        headers["x-tokenyard-cost"] = done.served.cost
        exchange.answer(chat_to_message(done.body, model=model.name), headers)
        return

    relay = await gateway.stream(request_id, principal, chat, model)
    translator = StreamTranslator(model=model.name, message_id="msg_" + request_id[4:])
    payloads = relay.payloads()
    try:
        await exchange.open_stream(
            {
                **answer_headers(request_id, relay.served),
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        async for payload in payloads:
            note_first_byte()
            for event in translator.feed(loads(payload)):
                await exchange.write(event)
        if relay.failure is not None:
            note_error(relay.failure)
            for event in translator.error(relay.failure.message, "overloaded_error"):
                await exchange.write(event)
        else:
            usage = relay.usage().to_openai()
            usage["cost"] = float(relay.served.cost)
            for event in translator.finish(usage):
                await exchange.write(event)
    except ConnectionResetError:  # the client left: closing the payloads closes the
        note_client_left()  # upstream and charges
    except TokenyardError as exc:  # the charge could not be committed: no message_stop
        note_error(exc)
        for event in translator.error(exc.message):
            await exchange.write(event)
    finally:
        await payloads.aclose()
        await relay.aclose()


_CLIENT_HEADERS = ("anthropic-version", "anthropic-beta")


async def _passthrough(
    exchange: Exchange,
    principal: Principal,
    chat: ChatRequest,
    model: PublicModel,
    body: JSONObject,
) -> None:
    """Anthropic upstreams get the client's body untouched (see gateway/passthrough.py)."""
    request_id = exchange.request_id
    headers = {h: exchange.headers[h] for h in _CLIENT_HEADERS if h in exchange.headers}
    served, answer = await exchange.generation.gateway.messages_passthrough(
        request_id, principal, request=chat, model=model, raw=body, headers=headers
    )
    record = current()
    record = record if record is not None and record.capture else None
    if isinstance(answer, bytes):
        if record is not None:
            record.keep_completion(_message_text(answer))
        out = answer_headers(request_id, served)
        out["x-tokenyard-cost"] = served.cost
        exchange.answer_json(answer, out)
        return
    text: list[str] = []
    try:
        await exchange.open_stream(
            {
                **answer_headers(request_id, served),
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
            }
        )
        async for line in answer:
            note_first_byte()
            if record is not None and b'"text_delta"' in line:
                text.append(_delta_text(line))
            await exchange.write(line)
    except ConnectionResetError:  # the client left: closing the relay closes the upstream
        note_client_left()  # and charges
    finally:
        await answer.aclose()
        if record is not None:
            record.keep_completion("".join(text))


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

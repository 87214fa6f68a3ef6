"""The client API of SPEC §3 (``/v1``), authenticated by client keys."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from tokenyard.billing.invoice import month_bounds
from tokenyard.billing.money import format_nano
from tokenyard.errors import AuthenticationFailed, ModelNotFound, TokenyardError
from tokenyard.gateway.relay import Served
from tokenyard.identity.service import Principal
from tokenyard.routing.auto import explain, parse_auto
from tokenyard.routing.catalog import PublicModel
from tokenyard.server.exchange import AiohttpExchange, Exchange
from tokenyard.server.generation import generation_of
from tokenyard.server.http import (
    REQUEST_ID,
    bearer,
    check_message_count,
    check_messages,
    credential,
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
from tokenyard.server.state import IDENTITY, LIMITS, REPORTS
from tokenyard.store.reports import UsageFilter
from tokenyard.wire.json import dumps
from tokenyard.wire.sse import frame


async def _principal(request: web.Request) -> Principal:
    return note_caller(await request.app[IDENTITY].authenticate(bearer(request)))


def answer_headers(request_id: str, served: Served) -> dict[str, str]:
    return {
        REQUEST_ID: request_id,
        "x-tokenyard-model": served.model,
        "x-tokenyard-provider": served.provider,
        "x-tokenyard-attempts": str(served.attempts),
    }


async def chat_completions(request: web.Request) -> web.StreamResponse:
    exchange = AiohttpExchange(request)
    await chat(exchange)
    return exchange.answered()


async def chat(exchange: Exchange) -> None:
    """``POST /v1/chat/completions`` on either HTTP server (server/exchange.py)."""
    app = exchange.app
    principal = note_caller(await app[IDENTITY].authenticate(credential(exchange.headers)))
    gateway = exchange.generation.gateway
    body = await exchange.json()
    check_message_count(app[LIMITS], body)
    chat, model = await gateway.parse_chat(principal, body)
    note_request(chat.model, stream=chat.stream)
    request_id = exchange.request_id
    route = {"x-tokenyard-route": chat.route} if chat.route else {}
    if not chat.stream:
        done = await gateway.complete(request_id, principal, chat, model)
        headers = {**answer_headers(request_id, done.served), **route}
        headers["x-tokenyard-cost"] = done.served.cost
        exchange.answer(done.body, headers)
        return
    relay = await gateway.stream(request_id, principal, chat, model)
    frames = relay.frames()
    try:
        await exchange.open_stream(
            {
                **answer_headers(request_id, relay.served),
                **route,
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        async for data in frames:
            note_first_byte()
            await exchange.write(data)
        if relay.failure is not None:
            note_error(relay.failure)
    except ConnectionResetError:  # the client left: closing the frames closes the upstream
        note_client_left()  # and charges
    except TokenyardError as exc:  # the charge could not be committed: no final [DONE]
        note_error(exc)
        await exchange.write(frame(dumps(exc.body())))
    finally:
        await frames.aclose()
        await relay.aclose()


async def embeddings(request: web.Request) -> web.StreamResponse:
    exchange = AiohttpExchange(request)
    await embed(exchange)
    return exchange.answered()


async def embed(exchange: Exchange) -> None:
    """``POST /v1/embeddings`` on either HTTP server (server/exchange.py)."""
    principal = note_caller(await exchange.app[IDENTITY].authenticate(credential(exchange.headers)))
    body = await exchange.json()
    note_request(str(body.get("model")), stream=False)
    done = await exchange.generation.gateway.embed(exchange.request_id, principal, body)
    headers = answer_headers(exchange.request_id, done.served)
    headers["x-tokenyard-cost"] = done.served.cost
    exchange.answer(done.body, headers)


def _model_entry(model: PublicModel) -> dict[str, object]:
    return {
        "id": model.name,
        "object": "model",
        "created": 0,
        "owned_by": "tokenyard",
        "kind": model.kind,
        "context_window": model.config.context_window,
        "max_output_tokens": model.config.max_output_tokens,
        "capabilities": list(model.config.capabilities),
        "tier": model.config.tier,
    }


def _usable(principal: Principal, model: PublicModel) -> bool:
    """The key may use the model, and one of its deployments is inside the key's residency."""
    return principal.may_use(model.name) and (
        principal.regions is None or any(d.region in principal.regions for d in model.deployments)
    )


async def list_models(request: web.Request) -> web.Response:
    principal = await _principal(request)
    models = generation_of(request).gateway.catalog.models.values()
    data = [_model_entry(m) for m in models if _usable(principal, m)]
    return json_response({"object": "list", "data": data})


async def get_model(request: web.Request) -> web.Response:
    principal = await _principal(request)
    name = request.match_info["model"]
    model = generation_of(request).gateway.catalog.get(name)
    if model is None or not _usable(principal, model):
        raise ModelNotFound(f"the model {name!r} does not exist", param="model")
    return json_response(_model_entry(model))


async def account(request: web.Request) -> web.Response:
    """The caller's own account and key: balance, reserved, this month's spend, limits."""
    principal = await _principal(request)
    identity = request.app[IDENTITY]
    account_row = await identity.store.get_account(principal.account_id)
    key_row = await identity.store.key_by_id(principal.key_id)
    if account_row is None or key_row is None:
        raise AuthenticationFailed("invalid API key")
    now = datetime.now(UTC)
    month = now.strftime("%Y-%m")
    start, end = month_bounds(month)
    spent = await request.app[REPORTS].usage(
        UsageFilter(account_id=account_row.id, since=start, until=end), "day"
    )
    config = generation_of(request).config
    return json_response(
        {
            "account_id": account_row.id,
            "name": account_row.name,
            "currency": config.billing.currency,
            "balance": format_nano(account_row.balance_nano),
            "reserved": format_nano(account_row.reserved_nano),
            "available": format_nano(account_row.balance_nano - account_row.reserved_nano),
            "month": month,
            "spent_this_month": format_nano(sum(r.cost_nano for r in spent)),
            "key": {
                "id": key_row.id,
                "prefix": key_row.prefix,
                "name": key_row.name,
                "models": list(key_row.models) if key_row.models is not None else None,
                "regions": sorted(principal.regions) if principal.regions is not None else None,
                "rpm": key_row.rpm,
                "tpm": key_row.tpm,
                "budget": format_nano(key_row.budget_nano)
                if key_row.budget_nano is not None
                else None,
                "spent": format_nano(key_row.spent_nano),
                "reserved": format_nano(key_row.reserved_nano),
                "expires_at": key_row.expires_at.isoformat() if key_row.expires_at else None,
            },
        }
    )


async def route(request: web.Request) -> web.Response:
    """What `auto` would choose for this chat request, and why — no upstream is called."""
    principal = await _principal(request)
    body = await read_json(request)
    check_messages(request, body)
    gateway = generation_of(request).gateway
    chat = gateway.read_chat(principal, body)
    tier = parse_auto(chat.model)
    ranking = await gateway.rank(principal, chat, tier if tier is not False else None)
    return json_response(
        {
            "task": ranking.task.task,
            "task_reason": ranking.task.reason,
            "tier": ranking.tier,
            "needs": sorted(ranking.needs),
            "candidates": [
                {
                    "model": c.name,
                    "tier": c.tier,
                    "task_match": c.task_match,
                    "expected_cost": str(c.expected_cost),
                    "health": c.health,
                    "reasons": c.reasons,
                }
                for c in ranking.candidates
            ],
            "rejected": ranking.rejected,
            "route": explain(ranking),
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/route", route)
    app.router.add_get("/v1/account", account)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model:.+}", get_model)

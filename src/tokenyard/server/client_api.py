"""The client API of SPEC §3 (``/v1``), authenticated by client keys."""

from __future__ import annotations

from aiohttp import web

from tokenyard.errors import ModelNotFound
from tokenyard.gateway.flow import Gateway
from tokenyard.gateway.relay import Served
from tokenyard.identity.service import Identity, Principal
from tokenyard.routing.catalog import PublicModel
from tokenyard.server.http import REQUEST_ID, bearer, json_response, read_json

GATEWAY = web.AppKey("gateway", Gateway)
IDENTITY = web.AppKey("identity", Identity)


async def _principal(request: web.Request) -> Principal:
    return await request.app[IDENTITY].authenticate(bearer(request))


def _served_headers(request: web.Request, served: Served) -> dict[str, str]:
    return {
        REQUEST_ID: request["request_id"],
        "x-tokenyard-model": served.model,
        "x-tokenyard-provider": served.provider,
        "x-tokenyard-attempts": str(served.attempts),
    }


async def chat_completions(request: web.Request) -> web.StreamResponse:
    principal = await _principal(request)
    gateway = request.app[GATEWAY]
    chat, model = gateway.parse_chat(principal, await read_json(request))
    if not chat.stream:
        done = await gateway.complete(chat, model)
        headers = _served_headers(request, done.served)
        headers["x-tokenyard-cost"] = done.served.cost
        return json_response(done.body, headers=headers)
    relay = await gateway.stream(chat, model)
    response = web.StreamResponse(
        headers={
            **_served_headers(request, relay.served),
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    frames = relay.frames()
    try:
        await response.prepare(request)
        async for data in frames:
            await response.write(data)
    except ConnectionResetError:
        pass  # the client left; closing the frames below closes the upstream and settles
    finally:
        await frames.aclose()
    return response


async def embeddings(request: web.Request) -> web.Response:
    principal = await _principal(request)
    done = await request.app[GATEWAY].embed(principal, await read_json(request))
    headers = _served_headers(request, done.served)
    headers["x-tokenyard-cost"] = done.served.cost
    return json_response(done.body, headers=headers)


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


async def list_models(request: web.Request) -> web.Response:
    principal = await _principal(request)
    models = request.app[GATEWAY].catalog.models.values()
    data = [_model_entry(m) for m in models if principal.may_use(m.name)]
    return json_response({"object": "list", "data": data})


async def get_model(request: web.Request) -> web.Response:
    principal = await _principal(request)
    name = request.match_info["model"]
    model = request.app[GATEWAY].catalog.get(name)
    if model is None or not principal.may_use(name):
        raise ModelNotFound(f"the model {name!r} does not exist", param="model")
    return json_response(_model_entry(model))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model:.+}", get_model)

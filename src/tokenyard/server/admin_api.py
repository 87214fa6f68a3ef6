"""The admin API of SPEC §5 (accounts and keys so far), behind the configured admin key."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime

from aiohttp import web

from tokenyard.billing.money import format_nano, parse_amount
from tokenyard.errors import AuthenticationFailed, InvalidRequest, NotFound
from tokenyard.gateway.flow import Gateway
from tokenyard.identity.service import Identity
from tokenyard.server.client_api import GATEWAY, IDENTITY
from tokenyard.server.http import REQUEST_ID, bearer, json_response, read_json
from tokenyard.wire.json import JSONObject

ADMIN_KEY = web.AppKey("admin_key", str)


def _require_admin(request: web.Request) -> None:
    expected = request.app.get(ADMIN_KEY)
    given = bearer(request) or ""
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise AuthenticationFailed("an admin key is required")


def _text(body: JSONObject, name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise InvalidRequest(
            f"{name} must be a non-empty string of at most 200 characters", param=name
        )
    return value


def _positive_int(body: JSONObject, name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest(f"{name} must be a positive integer", param=name)
    return value


def _amount(body: JSONObject, name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    try:
        nano = parse_amount(str(value)) if isinstance(value, str | int) else None
    except ValueError:
        nano = None
    if nano is None or nano < 0:
        raise InvalidRequest(f"{name} must be a non-negative decimal string", param=name)
    return nano


def _models(body: JSONObject, gateway: Gateway) -> list[str] | None:
    value = body.get("models")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise InvalidRequest("models must be an array of model names", param="models")
    unknown = [m for m in value if gateway.catalog.get(m) is None]
    if unknown:
        raise InvalidRequest(f"unknown models: {', '.join(unknown)}", param="models")
    return list(value)


def _expiry(body: JSONObject) -> datetime | None:
    value = body.get("expires_at")
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        raise InvalidRequest(
            "expires_at must be an ISO 8601 timestamp", param="expires_at"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


async def create_account(request: web.Request) -> web.Response:
    _require_admin(request)
    body = await read_json(request)
    name = _text(body, "name")
    assert name is not None
    account = await request.app[IDENTITY].store.create_account(name)
    return json_response(
        {"id": account.id, "name": account.name, "balance": format_nano(account.balance_nano)},
        status=201,
        headers={REQUEST_ID: request["request_id"]},
    )


async def get_account(request: web.Request) -> web.Response:
    _require_admin(request)
    account = await request.app[IDENTITY].store.get_account(request.match_info["id"])
    if account is None:
        raise NotFound("no such account")
    return json_response(
        {
            "id": account.id,
            "name": account.name,
            "balance": format_nano(account.balance_nano),
            "reserved": format_nano(account.reserved_nano),
        }
    )


async def create_key(request: web.Request) -> web.Response:
    _require_admin(request)
    body = await read_json(request)
    identity: Identity = request.app[IDENTITY]
    account_id = _text(body, "account_id")
    assert account_id is not None
    if await identity.store.get_account(account_id) is None:
        raise NotFound("no such account", param="account_id")
    issued = await identity.issue_key(
        account_id=account_id,
        name=_text(body, "name", required=False) or "default",
        models=_models(body, request.app[GATEWAY]),
        rpm=_positive_int(body, "rpm"),
        tpm=_positive_int(body, "tpm"),
        budget_nano=_amount(body, "budget"),
        expires_at=_expiry(body),
    )
    row = issued.row
    return json_response(
        {
            "id": row.id,
            "key": issued.key,
            "prefix": row.prefix,
            "account_id": row.account_id,
            "name": row.name,
            "models": list(row.models) if row.models is not None else None,
            "rpm": row.rpm,
            "tpm": row.tpm,
            "budget": format_nano(row.budget_nano) if row.budget_nano is not None else None,
            "expires_at": row.expires_at.isoformat() if row.expires_at else None,
        },
        status=201,
    )


async def revoke_key(request: web.Request) -> web.Response:
    _require_admin(request)
    if not await request.app[IDENTITY].revoke(request.match_info["id"]):
        raise NotFound("no such key, or already revoked")
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/admin/accounts", create_account)
    app.router.add_get("/admin/accounts/{id}", get_account)
    app.router.add_post("/admin/keys", create_key)
    app.router.add_delete("/admin/keys/{id}", revoke_key)

"""The admin API of SPEC §5 — accounts, credits, usage, invoices, keys, invites — behind the
configured admin key. What an operator watches (providers, the request log) is in
server/admin_watch.py."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from aiohttp import web

from tokenyard.billing.invoice import Statement, month_bounds
from tokenyard.billing.money import format_nano, parse_amount
from tokenyard.errors import AuthenticationFailed, InvalidRequest, NotFound
from tokenyard.gateway.flow import Gateway
from tokenyard.identity.service import Identity
from tokenyard.server.generation import CURRENT, generation_of
from tokenyard.server.http import bearer, json_response, read_json
from tokenyard.server.state import ADMIN_KEY, IDENTITY, LEDGER, PORTAL, REPORTS
from tokenyard.store.accounts import AccountRow
from tokenyard.store.ledger import BalanceOutOfRange, DuplicateReference
from tokenyard.store.reports import UsageFilter
from tokenyard.wire.json import JSONObject

MAX_LIMIT = 2**31 - 1
"""The largest ``rpm``/``tpm`` of a key (a 32-bit column)."""


def require_admin(request: web.Request) -> None:
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
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise InvalidRequest(f"{name} must be an integer from 1 to {MAX_LIMIT}", param=name)
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


def _regions(body: JSONObject, gateway: Gateway) -> list[str] | None:
    """A residency setting: a non-empty list of region tags that some deployment carries
    (a typo would otherwise leave a key that nothing can serve), or null for any region."""
    value = body.get("regions")
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(r, str) and r.strip() and len(r) <= 100 for r in value)
    ):
        raise InvalidRequest(
            "regions must be a non-empty array of region names, or null for any region",
            param="regions",
        )
    known = {d.region for m in gateway.catalog.models.values() for d in m.deployments}
    unknown = sorted(set(value) - known)
    if unknown:
        listed = ", ".join(sorted(r for r in known if r)) or "none"
        raise InvalidRequest(
            f"unknown regions: {', '.join(unknown)} (the deployments' regions: {listed})",
            param="regions",
        )
    return sorted(set(value))


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


def _markup(body: JSONObject) -> str | None:
    value = body.get("markup")
    if value is None:
        return None
    try:
        markup = Decimal(str(value)) if isinstance(value, str | int) else None
    except InvalidOperation:
        markup = None
    if markup is None or not markup.is_finite() or markup < 0 or markup > 100:
        raise InvalidRequest("markup must be a decimal string between 0 and 100", param="markup")
    return str(markup)


def _account_json(account: AccountRow) -> JSONObject:
    return {
        "id": account.id,
        "name": account.name,
        "balance": format_nano(account.balance_nano),
        "reserved": format_nano(account.reserved_nano),
        "markup": account.markup,
        "regions": list(account.regions) if account.regions is not None else None,
        "disabled": account.disabled_at is not None,
    }


async def create_account(request: web.Request) -> web.Response:
    require_admin(request)
    body = await read_json(request)
    name = _text(body, "name")
    assert name is not None
    account = await request.app[IDENTITY].store.create_account(
        name, markup=_markup(body), regions=_regions(body, generation_of(request).gateway)
    )
    return json_response(_account_json(account), status=201)


async def update_account(request: web.Request) -> web.Response:
    """Change an account's residency (``{"regions": [...]}``, or null to lift it). It takes
    effect at once for every key of the account, in every process."""
    require_admin(request)
    body = await read_json(request)
    if "regions" not in body:
        raise InvalidRequest(
            "regions is required: an array of region names, or null for any region",
            param="regions",
        )
    extra = sorted(set(body) - {"regions"})
    if extra:
        raise InvalidRequest(
            f"only regions can be changed here, not {', '.join(extra)}", param=extra[0]
        )
    regions = _regions(body, generation_of(request).gateway)
    account = await request.app[IDENTITY].set_account_regions(request.match_info["id"], regions)
    if account is None:
        raise NotFound("no such account")
    return json_response(_account_json(account))


async def credit_account(request: web.Request) -> web.Response:
    """Credits (or, with a negative amount, adjusts) once per ``reference``."""
    require_admin(request)
    body = await read_json(request)
    reference = _text(body, "reference")
    value = body.get("amount")
    try:
        amount = parse_amount(value) if isinstance(value, str) else None
    except ValueError:
        amount = None
    if amount is None or amount == 0:
        raise InvalidRequest("amount must be a non-zero decimal string", param="amount")
    try:
        result = await request.app[LEDGER].credit(
            request.match_info["id"],
            amount,
            f"admin:{reference}",
            kind="credit" if amount > 0 else "adjustment",
            note=_text(body, "note", required=False),
        )
    except DuplicateReference:
        raise InvalidRequest(
            "this reference was used for another account", param="reference"
        ) from None
    except BalanceOutOfRange as exc:
        raise InvalidRequest(str(exc), param="amount") from None
    if result is None:
        raise NotFound("no such account")
    balance, applied = result
    return json_response(
        {"balance": format_nano(balance), "applied": applied}, status=201 if applied else 200
    )


def parse_when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{name} must be an ISO 8601 date or timestamp", param=name) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


async def usage(request: web.Request) -> web.Response:
    require_admin(request)
    query = request.query
    group_by = query.get("group_by", "model")
    if group_by not in ("model", "day", "key", "provider"):
        raise InvalidRequest("group_by must be model, day, key or provider", param="group_by")
    where = UsageFilter(
        account_id=query.get("account_id"),
        key_id=query.get("key_id"),
        model=query.get("model"),
        since=parse_when(query.get("since"), "since"),
        until=parse_when(query.get("until"), "until"),
    )
    rows = await request.app[REPORTS].usage(where, group_by)  # type: ignore[arg-type]
    return json_response(
        {
            "group_by": group_by,
            "rows": [
                {
                    "group": row.group,
                    "requests": row.requests,
                    "input_tokens": row.input_tokens,
                    "cached_tokens": row.cached_tokens,
                    "output_tokens": row.output_tokens,
                    "provider_cost": format_nano(row.provider_cost_nano),
                    "cost": format_nano(row.cost_nano),
                }
                for row in rows
            ],
        }
    )


async def invoice(request: web.Request) -> web.Response:
    require_admin(request)
    account = await request.app[IDENTITY].store.get_account(request.match_info["id"])
    if account is None:
        raise NotFound("no such account")
    month = request.query.get("month") or datetime.now(UTC).strftime("%Y-%m")
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv", "html"):
        raise InvalidRequest("format must be json, csv or html", param="format")
    statement = await build_statement(request.app, account, month)
    if fmt == "csv":
        return web.Response(
            text=statement.as_csv(),
            content_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{account.id}-{month}.csv"'},
        )
    if fmt == "html":
        return web.Response(text=statement.as_html(), content_type="text/html")
    return json_response(statement.as_json())


async def build_statement(app: web.Application, account: AccountRow, month: str) -> Statement:
    start, end = month_bounds(month)
    reports = app[REPORTS]
    lines = await reports.usage(UsageFilter(account_id=account.id, since=start, until=end), "model")
    return Statement(
        account_id=account.id,
        account_name=account.name,
        month=month,
        currency=app[CURRENT].generation.config.billing.currency,
        lines=lines,
        credits_nano=await reports.credits(account.id, start, end),
    )


async def get_account(request: web.Request) -> web.Response:
    require_admin(request)
    account = await request.app[IDENTITY].store.get_account(request.match_info["id"])
    if account is None:
        raise NotFound("no such account")
    return json_response(_account_json(account))


async def create_key(request: web.Request) -> web.Response:
    require_admin(request)
    body = await read_json(request)
    identity: Identity = request.app[IDENTITY]
    account_id = _text(body, "account_id")
    assert account_id is not None
    account = await identity.store.get_account(account_id)
    if account is None:
        raise NotFound("no such account", param="account_id")
    if account.disabled_at is not None:
        raise InvalidRequest("the account is disabled: it gets no keys", param="account_id")
    regions = _regions(body, generation_of(request).gateway)
    if (
        regions is not None
        and account.regions is not None
        and not set(regions) & set(account.regions)
    ):
        raise InvalidRequest(
            f"regions shares no region with the account's residency "
            f"({', '.join(account.regions)}): the key could never be served",
            param="regions",
        )
    issued = await identity.issue_key(
        account_id=account_id,
        name=_text(body, "name", required=False) or "default",
        models=_models(body, generation_of(request).gateway),
        rpm=_positive_int(body, "rpm"),
        tpm=_positive_int(body, "tpm"),
        budget_nano=_amount(body, "budget"),
        expires_at=_expiry(body),
        regions=regions,
        log_prompts=_log_prompts(body),
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
            "regions": list(row.regions) if row.regions is not None else None,
            "rpm": row.rpm,
            "tpm": row.tpm,
            "budget": format_nano(row.budget_nano) if row.budget_nano is not None else None,
            "expires_at": row.expires_at.isoformat() if row.expires_at else None,
            "log_prompts": row.log_prompts,
        },
        status=201,
    )


def _log_prompts(body: JSONObject) -> bool | None:
    """The key's prompt-logging opt-out: false never stores its text; null follows the
    config."""
    value = body.get("log_prompts")
    if value is not None and not isinstance(value, bool):
        raise InvalidRequest("log_prompts must be true, false or null", param="log_prompts")
    return value


async def revoke_key(request: web.Request) -> web.Response:
    require_admin(request)
    if not await request.app[IDENTITY].revoke(request.match_info["id"]):
        raise NotFound("no such key, or already revoked")
    return web.Response(status=204)


async def create_invite(request: web.Request) -> web.Response:
    """A single-use sign-up code for ``portal.signup: invite``; shown only in this answer."""
    require_admin(request)
    return json_response({"code": await request.app[PORTAL].new_invite()}, status=201)


async def disable_account(request: web.Request) -> web.Response:
    """Revoke every key of the account at once and refuse its users' sign-in and sessions."""
    require_admin(request)
    account_id = request.match_info["id"]
    revoked = await request.app[PORTAL].disable(account_id)
    if revoked is None:
        raise NotFound("no such account")
    return json_response({"id": account_id, "disabled": True, "revoked_keys": revoked})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/admin/accounts", create_account)
    app.router.add_get("/admin/accounts/{id}", get_account)
    app.router.add_patch("/admin/accounts/{id}", update_account)
    app.router.add_post("/admin/accounts/{id}/credits", credit_account)
    app.router.add_get("/admin/accounts/{id}/invoice", invoice)
    app.router.add_get("/admin/usage", usage)
    app.router.add_post("/admin/keys", create_key)
    app.router.add_delete("/admin/keys/{id}", revoke_key)
    app.router.add_post("/admin/invites", create_invite)
    app.router.add_post("/admin/accounts/{id}/disable", disable_account)

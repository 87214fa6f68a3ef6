"""Accounts (list, one account, credits), their keys (create, shown once; revoke) and their
monthly statements. Every handler that takes an account id checks it against the session;
another tenant's account answers 404, as if it did not exist."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from aiohttp import web

from tokenyard.billing.money import parse_amount
from tokenyard.errors import InvalidRequest, NotFound, PermissionDenied
from tokenyard.server.admin_api import build_statement
from tokenyard.server.state import IDENTITY, LEDGER, PROCESSORS
from tokenyard.server.ui.render import UI, page, render, see_other
from tokenyard.server.ui.session import Session
from tokenyard.store.accounts import AccountRow
from tokenyard.store.ledger import BalanceOutOfRange, DuplicateReference


async def account_of(request: web.Request, session: Session) -> AccountRow:
    account_id = request.match_info["id"]
    account = None
    if session.may_see(account_id):
        account = await request.app[IDENTITY].store.get_account(account_id)
    if account is None:
        raise NotFound("no such account")
    return account


def _field(form: object, name: str, limit: int = 200) -> str:
    value = form.get(name) if hasattr(form, "get") else None
    text = value.strip() if isinstance(value, str) else ""
    if len(text) > limit:
        raise InvalidRequest(f"{name} is longer than {limit} characters", param=name)
    return text


@page()
async def accounts(request: web.Request, session: Session) -> web.Response:
    if not session.is_admin:
        return see_other(f"/ui/accounts/{session.account_id}")
    rows = await request.app[UI].dashboard.accounts()
    return render(request, "accounts.html", accounts=rows)


def account_page(
    request: web.Request,
    row: AccountRow,
    *,
    status: int = 200,
    notice: str | None = None,
    error: str | None = None,
) -> web.Response:
    """The account page: balance, the operator's credit and disable forms, the owner's top-up
    form (with the configured payment processors, or a word that there are none)."""
    processors = request.app[PROCESSORS]
    return render(
        request,
        "account.html",
        status=status,
        account=row,
        notice=notice,
        error=error,
        reference=secrets.token_hex(8),
        processors=sorted(processors),
    )


@page()
async def account(request: web.Request, session: Session) -> web.Response:
    return account_page(request, await account_of(request, session))


@page(admin=True)
async def credit(request: web.Request, session: Session) -> web.Response:
    """A credit through the ledger's idempotent path; the form's hidden reference makes a
    resubmitted form (back button, double click) credit once."""
    row = await account_of(request, session)
    form = await request.post()
    try:
        amount = parse_amount(_field(form, "amount"))
    except ValueError:
        raise InvalidRequest("the amount must be a decimal number", param="amount") from None
    if amount == 0:
        raise InvalidRequest("the amount must not be zero", param="amount")
    reference = _field(form, "reference") or secrets.token_hex(8)
    try:
        result = await request.app[LEDGER].credit(
            row.id,
            amount,
            f"ui:{reference}",
            kind="credit" if amount > 0 else "adjustment",
            note=_field(form, "note", 500) or None,
        )
    except DuplicateReference:
        raise InvalidRequest("this form was already used for another account") from None
    except BalanceOutOfRange as exc:
        raise InvalidRequest(str(exc), param="amount") from None
    if result is None:
        raise NotFound("no such account")
    fresh = await request.app[IDENTITY].store.get_account(row.id) or row
    notice = "Credited." if result[1] else "This credit was already applied."
    return account_page(request, fresh, notice=notice)


async def _keys_page(
    request: web.Request, account: AccountRow, *, new_key: str | None = None
) -> web.Response:
    keys = await request.app[UI].dashboard.keys(account.id)
    now = datetime.now(UTC)
    return render(request, "keys.html", account=account, keys=keys, new_key=new_key, now=now)


@page()
async def keys(request: web.Request, session: Session) -> web.Response:
    return await _keys_page(request, await account_of(request, session))


@page()
async def create_key(request: web.Request, session: Session) -> web.Response:
    """The new key is in this one response only (never stored, never redirected to)."""
    row = await account_of(request, session)
    if row.disabled_at is not None:
        raise PermissionDenied("this account is disabled: it cannot have keys")
    form = await request.post()
    issued = await request.app[IDENTITY].issue_key(
        account_id=row.id, name=_field(form, "name") or "default"
    )
    return await _keys_page(request, row, new_key=issued.key)


@page()
async def revoke_key(request: web.Request, session: Session) -> web.Response:
    row = await account_of(request, session)
    identity = request.app[IDENTITY]
    key = await identity.store.key_by_id(request.match_info["key_id"])
    if key is None or key.account_id != row.id:
        raise NotFound("no such key")
    await identity.revoke(key.id)  # bumps the revocation epoch: every process sees it
    return see_other(f"/ui/accounts/{row.id}/keys")


@page()
async def invoice(request: web.Request, session: Session) -> web.Response:
    row = await account_of(request, session)
    month = request.query.get("month") or datetime.now(UTC).strftime("%Y-%m")
    statement = await build_statement(request.app, row, month)
    return render(request, "invoice.html", account=row, month=month, statement=statement.as_json())


@page()
async def invoice_csv(request: web.Request, session: Session) -> web.Response:
    row = await account_of(request, session)
    month = request.query.get("month") or datetime.now(UTC).strftime("%Y-%m")
    statement = await build_statement(request.app, row, month)
    return web.Response(
        text=statement.as_csv(),
        content_type="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{row.id}-{month}.csv"',
            "Cache-Control": "no-store",
        },
    )

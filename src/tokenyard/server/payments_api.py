"""Top-ups: a hosted checkout for the caller's account, and the processors' webhooks that
credit it — once per event, whatever arrives twice."""

from __future__ import annotations

import logging
from decimal import Decimal

from aiohttp import web

from tokenyard.billing.money import format_nano, parse_amount, to_nano
from tokenyard.errors import InvalidRequest, NotFound
from tokenyard.payments import PaymentEvent, WebhookRejected
from tokenyard.server.generation import CURRENT
from tokenyard.server.http import bearer, json_response, read_body, read_json
from tokenyard.server.state import IDENTITY, LEDGER, PROCESSORS
from tokenyard.store.ledger import BalanceOutOfRange, DuplicateReference
from tokenyard.wire.json import JSONObject

log = logging.getLogger(__name__)
MAX_TOPUP = Decimal(100_000)


async def create_topup(request: web.Request) -> web.Response:
    principal = await request.app[IDENTITY].authenticate(bearer(request))
    body = await read_json(request)
    processor, amount = body.get("processor"), body.get("amount")
    checkout = await start_checkout(
        request.app,
        principal.account_id,
        processor if isinstance(processor, str) else None,
        amount if isinstance(amount, str) else None,
    )
    return json_response(checkout, status=201)


async def start_checkout(
    app: web.Application, account_id: str, processor: str | None, amount: str | None
) -> JSONObject:
    """A hosted checkout of ``amount`` (a decimal string, at most 2 decimals) for the account,
    with the named processor (or the only one configured). The API's top-up and the
    dashboard's "Top up" form both start here."""
    processors = app[PROCESSORS]
    name = processor or (next(iter(processors)) if len(processors) == 1 else None)
    if name not in processors:
        configured = ", ".join(sorted(processors)) or "none"
        raise InvalidRequest(f"processor must be one of: {configured}", param="processor")
    try:
        nano = parse_amount(amount) if amount is not None else 0
    except ValueError:
        nano = 0
    value = Decimal(nano) / 10**9
    if not 0 < value <= MAX_TOPUP or value != value.quantize(Decimal("0.01")):
        raise InvalidRequest(
            f"amount must be a decimal string with at most 2 decimals, up to {MAX_TOPUP}",
            param="amount",
        )
    currency = app[CURRENT].generation.config.billing.currency
    checkout = await processors[name].create_checkout(
        account_id=account_id, amount=value, currency=currency
    )
    return {
        "processor": checkout.processor,
        "id": checkout.id,
        "url": checkout.url,
        "amount": format_nano(nano),
        "currency": currency,
    }


def _in_billing_currency(app: web.Application, event: PaymentEvent) -> int:
    billing = app[CURRENT].generation.config.billing
    if event.currency == billing.currency:
        return to_nano(event.amount)
    rate = billing.fx.get(event.currency)
    if rate is None:
        raise WebhookRejected(f"payments in {event.currency} cannot be credited")
    return to_nano(event.amount * rate)


async def webhook(request: web.Request) -> web.Response:
    name = request.match_info["processor"]
    processor = request.app[PROCESSORS].get(name)
    if processor is None:
        raise NotFound(f"no payment processor {name!r} is configured")
    event = await processor.verify_webhook(await read_body(request), request.headers)
    if event is None:
        return json_response({"status": "ignored"})
    amount = _in_billing_currency(request.app, event)
    # A credit the ledger cannot hold is refused like any other event that cannot be
    # credited: a 400 the processor shows its operator, nothing written.
    too_much = WebhookRejected(
        f"this payment would move account {event.account_id!r}'s balance beyond what "
        "the ledger can hold"
    )
    try:
        result = await request.app[LEDGER].credit(
            event.account_id,
            amount,
            f"{event.processor}:{event.event_id}",
            note=f"top-up through {event.processor}",
        )
    except BalanceOutOfRange:
        raise too_much from None
    except DuplicateReference:  # the event id was credited to another account before
        raise WebhookRejected(
            f"event {event.event_id!r} was already credited to another account"
        ) from None
    if result is None:
        raise WebhookRejected(f"no account {event.account_id!r}")
    _, applied = result
    log.info(
        "top-up",
        extra={
            "fields": {
                "processor": name,
                "account": event.account_id,
                "amount": format_nano(amount),
                "applied": applied,
            }
        },
    )
    return json_response({"status": "credited" if applied else "duplicate"})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/account/topups", create_topup)
    app.router.add_post("/webhooks/{processor}", webhook)

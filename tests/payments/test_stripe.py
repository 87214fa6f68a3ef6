"""Stripe: Checkout Sessions through the official library against a stand-in, and webhooks
signed with Stripe's documented scheme (HMAC-SHA256 of "{t}.{body}")."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from typing import Any, TypeVar

import aiohttp
import orjson
import pytest

from tests.payments.standins import StripeStandIn, run_in_thread
from tokenyard.config.payments import StripeConfig
from tokenyard.errors import InvalidRequest, UpstreamError, UpstreamRejected
from tokenyard.payments import PaymentEvent, WebhookRejected
from tokenyard.payments.stripe import StripeProcessor

T = TypeVar("T")
NOW = 1_760_000_000.0
SECRET_KEY = "sk_test_51Hunit0secret0key"
WHSEC = "whsec_unit0webhook0secret"


@pytest.fixture(scope="module")
def standin() -> Iterator[StripeStandIn]:
    server = StripeStandIn(SECRET_KEY)
    _, stop = run_in_thread(server)
    yield server
    stop()


def with_stripe(
    base_url: str,
    body: Callable[[StripeProcessor], Awaitable[T]],
    *,
    secret_key: str = SECRET_KEY,
    cancel_url: str | None = "https://example.com/cancelled",
) -> T:
    async def main() -> T:
        async with aiohttp.ClientSession() as session:
            config = StripeConfig(secret_key=secret_key, webhook_secret=WHSEC, api_base=base_url)
            processor = StripeProcessor(
                config,
                success_url="https://example.com/paid",
                cancel_url=cancel_url,
                session=session,
                clock=lambda: NOW,
            )
            return await body(processor)

    return asyncio.run(main())


def verify(body: bytes, headers: dict[str, str]) -> PaymentEvent | None:
    return with_stripe("http://127.0.0.1:9", lambda p: p.verify_webhook(body, headers))


def signed(body: bytes, *, at: float = NOW, secret: str = WHSEC) -> dict[str, str]:
    t = int(at)
    v1 = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={t},v1={v1}"}


def event(
    kind: str = "checkout.session.completed",
    *,
    amount_total: int = 1000,
    currency: str = "usd",
    payment_status: str = "paid",
    metadata: dict[str, str] | None = None,
) -> bytes:
    session: dict[str, Any] = {
        "id": "cs_test_a1b2",
        "object": "checkout.session",
        "amount_total": amount_total,
        "currency": currency,
        "client_reference_id": "acct_7",
        "metadata": {"account_id": "acct_7"} if metadata is None else metadata,
        "mode": "payment",
        "payment_status": payment_status,
        "status": "complete",
    }
    doc = {
        "id": "evt_1PaidUnit",
        "object": "event",
        "api_version": "2025-09-30.clover",
        "created": int(NOW),
        "type": kind,
        "data": {"object": session},
    }
    return orjson.dumps(doc)


# ------------------------------------------------------------------ checkout


def test_checkout_session_is_created_with_minor_units_and_the_account(
    standin: StripeStandIn,
) -> None:
    checkout = with_stripe(
        standin.base_url,
        lambda p: p.create_checkout(account_id="acct_7", amount=Decimal("12.34"), currency="usd"),
    )
    assert checkout.processor == "stripe"
    assert checkout.id.startswith("cs_test_")
    assert checkout.url == f"https://checkout.stripe.com/c/pay/{checkout.id}"
    sent = standin.requests[-1]
    assert sent.path == "/v1/checkout/sessions"
    assert sent.headers["authorization"] == f"Bearer {SECRET_KEY}"
    assert sent.headers["content-type"] == "application/x-www-form-urlencoded"
    assert "stripe-version" in sent.headers
    form = sent.body
    assert form["mode"] == "payment"
    assert form["line_items[0][quantity]"] == "1"
    assert form["line_items[0][price_data][currency]"] == "usd"
    assert form["line_items[0][price_data][unit_amount]"] == "1234"
    assert form["line_items[0][price_data][product_data][name]"] == "tokenyard credit"
    assert form["metadata[account_id]"] == "acct_7"
    assert form["client_reference_id"] == "acct_7"
    assert form["success_url"] == "https://example.com/paid"
    assert form["cancel_url"] == "https://example.com/cancelled"


@pytest.mark.parametrize(
    ("amount", "currency", "unit_amount"),
    [("500", "JPY", "500"), ("10", "eur", "1000"), ("1.25", "KWD", "1250"), ("0.5", "usd", "50")],
)
def test_unit_amount_uses_the_currency_exponent(
    standin: StripeStandIn, amount: str, currency: str, unit_amount: str
) -> None:
    with_stripe(
        standin.base_url,
        lambda p: p.create_checkout(account_id="a", amount=Decimal(amount), currency=currency),
        cancel_url=None,
    )
    form = standin.requests[-1].body
    assert form["line_items[0][price_data][unit_amount]"] == unit_amount
    assert form["line_items[0][price_data][currency]"] == currency.lower()
    assert "cancel_url" not in form


@pytest.mark.parametrize(
    ("amount", "currency"),
    [("10.001", "USD"), ("1.5", "JPY"), ("0", "USD"), ("-1", "USD"), ("1.2345", "KWD")],
)
def test_amounts_the_currency_cannot_carry_are_refused_before_any_call(
    standin: StripeStandIn, amount: str, currency: str
) -> None:
    before = len(standin.requests)
    with pytest.raises(InvalidRequest):
        with_stripe(
            standin.base_url,
            lambda p: p.create_checkout(account_id="a", amount=Decimal(amount), currency=currency),
        )
    assert len(standin.requests) == before


def test_refusals_and_bad_credentials_become_upstream_errors_without_the_key(
    standin: StripeStandIn,
) -> None:
    standin.fail_next(
        400,
        {"error": {"type": "invalid_request_error", "message": "Amount must be at least $0.50"}},
    )
    with pytest.raises(UpstreamRejected) as refused:
        with_stripe(
            standin.base_url,
            lambda p: p.create_checkout(account_id="a", amount=Decimal("0.10"), currency="usd"),
        )
    assert "at least $0.50" in refused.value.message
    wrong_key = "sk_test_wrong0key0value"
    with pytest.raises(UpstreamError) as failed:
        with_stripe(
            standin.base_url,
            lambda p: p.create_checkout(account_id="a", amount=Decimal(5), currency="usd"),
            secret_key=wrong_key,
        )
    assert not failed.value.retryable and failed.value.status == 502
    for error in (refused.value, failed.value):
        assert SECRET_KEY not in str(error) and wrong_key not in str(error)


def test_an_unreachable_api_is_a_retryable_upstream_error() -> None:
    with pytest.raises(UpstreamError) as failed:
        with_stripe(
            "http://127.0.0.1:9",
            lambda p: p.create_checkout(account_id="a", amount=Decimal(5), currency="usd"),
        )
    assert failed.value.retryable
    assert SECRET_KEY not in str(failed.value)


# ------------------------------------------------------------------ webhooks


def test_a_paid_checkout_session_is_a_payment_event() -> None:
    body = event()
    assert verify(body, signed(body)) == PaymentEvent(
        processor="stripe",
        event_id="evt_1PaidUnit",
        account_id="acct_7",
        amount=Decimal("10.00"),
        currency="USD",
    )


@pytest.mark.parametrize(
    ("amount_total", "currency", "amount"),
    [
        (1999, "eur", Decimal("19.99")),
        (500, "jpy", Decimal(500)),
        (12340, "kwd", Decimal("12.340")),
    ],
)
def test_amounts_are_exact_decimals_in_the_currency(
    amount_total: int, currency: str, amount: Decimal
) -> None:
    body = event(amount_total=amount_total, currency=currency)
    payment = verify(body, signed(body))
    assert payment is not None
    assert payment.amount == amount and isinstance(payment.amount, Decimal)
    assert payment.currency == currency.upper()


def test_async_payment_success_is_a_payment_and_an_unpaid_completion_is_not() -> None:
    unpaid = event(payment_status="unpaid")
    assert verify(unpaid, signed(unpaid)) is None
    later = event("checkout.session.async_payment_succeeded")
    payment = verify(later, signed(later))
    assert payment is not None and payment.amount == Decimal("10.00")


@pytest.mark.parametrize(
    "kind", ["checkout.session.expired", "payment_intent.succeeded", "charge.refunded"]
)
def test_other_event_types_are_authentic_but_ignored(kind: str) -> None:
    body = event(kind)
    assert verify(body, signed(body)) is None


def test_a_session_without_our_account_id_is_ignored() -> None:
    doc = orjson.loads(event(metadata={}))
    doc["data"]["object"]["client_reference_id"] = None
    body = orjson.dumps(doc)
    assert verify(body, signed(body)) is None


def test_the_client_reference_id_stands_in_for_missing_metadata() -> None:
    body = event(metadata={})
    payment = verify(body, signed(body))
    assert payment is not None and payment.account_id == "acct_7"


def test_any_of_several_v1_signatures_may_match() -> None:
    body = event()
    good = signed(body)["Stripe-Signature"]
    rolled = f"{good},v1={'0' * 64},v0=deadbeef"
    assert verify(body, {"stripe-signature": rolled}) is not None


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "unsigned"),
        ({"Stripe-Signature": ""}, "unsigned"),
        ({"Stripe-Signature": "v1=abc"}, "malformed"),
        ({"Stripe-Signature": "t=abc,v1=abc"}, "malformed"),
        ({"Stripe-Signature": f"t={int(NOW)}"}, "malformed"),
        ({"Stripe-Signature": f"t={int(NOW)},v1={'0' * 64}"}, "bad signature"),
        ({"Stripe-Signature": f"t={int(NOW)},v1=\u00e9"}, "bad signature"),
    ],
)
def test_unsigned_or_malformed_signatures_are_rejected(
    headers: dict[str, str], reason: str
) -> None:
    with pytest.raises(WebhookRejected, match=reason) as rejected:
        verify(event(), headers)
    assert rejected.value.status == 400


def test_a_signature_with_another_secret_is_rejected() -> None:
    body = event()
    with pytest.raises(WebhookRejected, match="bad signature") as rejected:
        verify(body, signed(body, secret="whsec_someone0else"))
    assert WHSEC not in str(rejected.value)


def test_a_tampered_body_is_rejected() -> None:
    body = event()
    headers = signed(body)
    tampered = body.replace(b"1000", b"9000")
    assert tampered != body
    with pytest.raises(WebhookRejected, match="bad signature"):
        verify(tampered, headers)


def test_a_signature_for_another_timestamp_is_rejected() -> None:
    body = event()
    v1 = signed(body)["Stripe-Signature"].split("v1=")[1]
    with pytest.raises(WebhookRejected, match="bad signature"):
        verify(body, {"Stripe-Signature": f"t={int(NOW) + 1},v1={v1}"})


@pytest.mark.parametrize("offset", [-301, 301, -86_400])
def test_stale_or_future_timestamps_are_rejected(offset: int) -> None:
    body = event()
    with pytest.raises(WebhookRejected, match="tolerance"):
        verify(body, signed(body, at=NOW + offset))


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_timestamps_within_the_tolerance_are_accepted(offset: int) -> None:
    body = event()
    assert verify(body, signed(body, at=NOW + offset)) is not None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "malformed JSON"),
        (b"[1, 2]", "not a JSON object"),
        (orjson.dumps({"type": "checkout.session.completed"}), "no id"),
        (orjson.dumps({"id": "evt_1", "type": "checkout.session.completed"}), "data.object"),
    ],
)
def test_signed_but_malformed_events_are_rejected(body: bytes, reason: str) -> None:
    with pytest.raises(WebhookRejected, match=reason):
        verify(body, signed(body))


def test_a_malformed_amount_in_a_signed_event_is_rejected() -> None:
    doc = orjson.loads(event())
    doc["data"]["object"]["amount_total"] = "10.00"
    body = orjson.dumps(doc)
    with pytest.raises(WebhookRejected, match="amount_total"):
        verify(body, signed(body))


def test_the_processor_repr_holds_no_secret() -> None:
    async def describe(processor: StripeProcessor) -> str:
        return f"{processor!r} {processor}"

    text = with_stripe("http://127.0.0.1:9", describe)
    assert SECRET_KEY not in text and WHSEC not in text

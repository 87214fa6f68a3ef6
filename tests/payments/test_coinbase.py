"""Coinbase Commerce: charges against a stand-in; webhooks signed as Coinbase documents (hex
HMAC-SHA256 of the raw body with the shared secret, in X-CC-Webhook-Signature)."""

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

from tests.payments.standins import CoinbaseStandIn, run_in_thread
from tokenyard.config.payments import CoinbaseConfig
from tokenyard.errors import InvalidRequest, UpstreamError, UpstreamRejected
from tokenyard.payments import PaymentEvent, WebhookRejected
from tokenyard.payments.coinbase import CoinbaseProcessor

T = TypeVar("T")
NOW = 1_760_000_000.0
API_KEY = "cc-api-key-unit-0123"
SHARED_SECRET = "cc-webhook-shared-secret-unit"


@pytest.fixture(scope="module")
def standin() -> Iterator[CoinbaseStandIn]:
    server = CoinbaseStandIn(API_KEY)
    _, stop = run_in_thread(server)
    yield server
    stop()


def with_coinbase(
    base_url: str, body: Callable[[CoinbaseProcessor], Awaitable[T]], *, api_key: str = API_KEY
) -> T:
    async def main() -> T:
        async with aiohttp.ClientSession() as session:
            config = CoinbaseConfig(
                api_key=api_key, webhook_secret=SHARED_SECRET, api_base=base_url
            )
            processor = CoinbaseProcessor(
                config,
                success_url="https://example.com/paid",
                cancel_url="https://example.com/cancelled",
                session=session,
                clock=lambda: NOW,
            )
            return await body(processor)

    return asyncio.run(main())


def verify(body: bytes, headers: dict[str, str]) -> PaymentEvent | None:
    return with_coinbase("http://127.0.0.1:9", lambda p: p.verify_webhook(body, headers))


def signed(body: bytes, secret: str = SHARED_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-CC-Webhook-Signature": digest}


def event(
    kind: str = "charge:confirmed",
    *,
    amount: str = "10.00",
    currency: str = "USD",
    metadata: dict[str, str] | None = None,
) -> bytes:
    charge: dict[str, Any] = {
        "id": "f765421f-2a2d-4f2b-8f6c-6c3b4d6a1c2e",
        "code": "66BEOV2A",
        "name": "tokenyard credit",
        "hosted_url": "https://commerce.coinbase.com/charges/66BEOV2A",
        "metadata": {"account_id": "acct_7"} if metadata is None else metadata,
        "pricing_type": "fixed_price",
        "pricing": {
            "local": {"amount": amount, "currency": currency},
            "bitcoin": {"amount": "0.00016000", "currency": "BTC"},
        },
        "timeline": [{"status": "NEW"}, {"status": "PENDING"}, {"status": "COMPLETED"}],
    }
    doc = {
        "id": 1,
        "scheduled_for": "2025-10-09T18:13:20Z",
        "attempt_number": 1,
        "event": {
            "id": "24934862-d980-46cb-9402-43c81b0cdba6",
            "resource": "event",
            "type": kind,
            "api_version": "2018-03-22",
            "created_at": "2025-10-09T18:13:20Z",
            "data": charge,
        },
    }
    return orjson.dumps(doc)


# ------------------------------------------------------------------ checkout


def test_a_charge_is_created_with_the_account_in_metadata(standin: CoinbaseStandIn) -> None:
    checkout = with_coinbase(
        standin.base_url,
        lambda p: p.create_checkout(account_id="acct_7", amount=Decimal("25"), currency="usd"),
    )
    assert checkout.processor == "coinbase"
    assert checkout.id.startswith("e0d9d5c4-")
    assert checkout.url.startswith("https://commerce.coinbase.com/charges/")
    sent = standin.requests[-1]
    assert sent.path == "/charges"
    assert sent.headers["x-cc-api-key"] == API_KEY
    assert sent.headers["x-cc-version"] == "2018-03-22"
    assert sent.headers["content-type"].startswith("application/json")
    body = sent.body
    assert body["pricing_type"] == "fixed_price"
    assert body["local_price"] == {"amount": "25.00", "currency": "USD"}
    assert body["metadata"] == {"account_id": "acct_7"}
    assert body["redirect_url"] == "https://example.com/paid"
    assert body["cancel_url"] == "https://example.com/cancelled"
    assert body["name"] == "tokenyard credit" and body["description"]


@pytest.mark.parametrize(("amount", "currency"), [("1.005", "USD"), ("0", "USD"), ("12", "U$D")])
def test_amounts_are_checked_before_any_call(
    standin: CoinbaseStandIn, amount: str, currency: str
) -> None:
    before = len(standin.requests)
    with pytest.raises(InvalidRequest):
        with_coinbase(
            standin.base_url,
            lambda p: p.create_checkout(account_id="a", amount=Decimal(amount), currency=currency),
        )
    assert len(standin.requests) == before


def test_refusals_and_bad_keys_become_upstream_errors_without_the_key(
    standin: CoinbaseStandIn,
) -> None:
    standin.fail_next(400, {"error": {"type": "invalid_request", "message": "Invalid currency"}})
    with pytest.raises(UpstreamRejected, match="Invalid currency"):
        with_coinbase(
            standin.base_url,
            lambda p: p.create_checkout(account_id="a", amount=Decimal(5), currency="USD"),
        )
    standin.fail_next(503, {"error": {"type": "service_unavailable", "message": API_KEY}})
    with pytest.raises(UpstreamError) as unavailable:
        with_coinbase(
            standin.base_url,
            lambda p: p.create_checkout(account_id="a", amount=Decimal(5), currency="USD"),
        )
    assert unavailable.value.retryable and API_KEY not in str(unavailable.value)
    with pytest.raises(UpstreamError) as refused:
        with_coinbase(
            standin.base_url,
            lambda p: p.create_checkout(account_id="a", amount=Decimal(5), currency="USD"),
            api_key="cc-wrong-key",
        )
    assert not refused.value.retryable and "cc-wrong-key" not in str(refused.value)


# ------------------------------------------------------------------ webhooks


def test_a_confirmed_charge_is_a_payment_event() -> None:
    body = event()
    assert verify(body, signed(body)) == PaymentEvent(
        processor="coinbase",
        event_id="24934862-d980-46cb-9402-43c81b0cdba6",
        account_id="acct_7",
        amount=Decimal("10.00"),
        currency="USD",
    )


def test_amounts_are_exact_decimals() -> None:
    body = event(amount="19.99", currency="eur")
    payment = verify(body, signed(body))
    assert payment is not None
    assert payment.amount == Decimal("19.99") and payment.currency == "EUR"


@pytest.mark.parametrize(
    "kind", ["charge:created", "charge:pending", "charge:failed", "charge:delayed"]
)
def test_other_event_types_are_authentic_but_ignored(kind: str) -> None:
    body = event(kind)
    assert verify(body, signed(body)) is None


def test_a_charge_without_our_account_id_is_ignored() -> None:
    body = event(metadata={"customer_id": "x"})
    assert verify(body, signed(body)) is None


def test_header_names_and_hex_case_do_not_matter() -> None:
    body = event()
    digest = signed(body)["X-CC-Webhook-Signature"].upper()
    assert verify(body, {"x-cc-webhook-signature": digest}) is not None


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-CC-Webhook-Signature": ""}, {"X-Other-Signature": "abc"}],
)
def test_unsigned_webhooks_are_rejected(headers: dict[str, str]) -> None:
    with pytest.raises(WebhookRejected, match="unsigned") as rejected:
        verify(event(), headers)
    assert rejected.value.status == 400


@pytest.mark.parametrize("signature", ["0" * 64, "not hex", "\u00e9" * 64])
def test_wrong_signatures_are_rejected(signature: str) -> None:
    with pytest.raises(WebhookRejected, match="bad signature"):
        verify(event(), {"X-CC-Webhook-Signature": signature})


def test_a_signature_with_another_secret_is_rejected() -> None:
    body = event()
    with pytest.raises(WebhookRejected, match="bad signature") as rejected:
        verify(body, signed(body, "someone-elses-secret"))
    assert SHARED_SECRET not in str(rejected.value)


def test_a_tampered_body_is_rejected() -> None:
    body = event()
    headers = signed(body)
    with pytest.raises(WebhookRejected, match="bad signature"):
        verify(body.replace(b"10.00", b"99.00"), headers)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "malformed JSON"),
        (b'"text"', "not a JSON object"),
        (orjson.dumps({"id": 1}), "no id"),
        (
            orjson.dumps(
                {
                    "event": {
                        "id": "e",
                        "type": "charge:confirmed",
                        "data": {"metadata": {"account_id": "a"}},
                    }
                }
            ),
            "pricing.local.amount",
        ),
    ],
)
def test_signed_but_malformed_events_are_rejected(body: bytes, reason: str) -> None:
    with pytest.raises(WebhookRejected, match=reason):
        verify(body, signed(body))

"""PayPal: OAuth token and Orders v2 against a stand-in; webhooks signed SHA256withRSA over
"{transmission id}|{time}|{webhook id}|{crc32}" with a locally made certificate that the
stand-in serves, as PayPal's self-verification documents."""

from __future__ import annotations

import asyncio
import base64
import zlib
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import aiohttp
import orjson
import pytest

from tests.payments.standins import PayPalStandIn, Signer, make_certificate, rsa_sign, run_in_thread
from tokenyard.config.payments import PAYPAL_CERT_HOSTS, PayPalConfig
from tokenyard.errors import InvalidRequest, UpstreamError, UpstreamRejected
from tokenyard.payments import PaymentEvent, WebhookRejected
from tokenyard.payments.paypal import PayPalProcessor

T = TypeVar("T")
NOW = 1_760_000_000.0
CLIENT_ID = "AbCdClientIdUnit"
CLIENT_SECRET = "EFgh-client-secret-unit"
WEBHOOK_ID = "8PT597110X687430LKGECATA"
DAY = 86_400.0


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def signer() -> Signer:
    return make_certificate(not_before=NOW - DAY, not_after=NOW + 365 * DAY)


@pytest.fixture(scope="module")
def standin(signer: Signer) -> Iterator[PayPalStandIn]:
    server = PayPalStandIn(CLIENT_ID, CLIENT_SECRET)
    server.cert_pem = signer.pem
    _, stop = run_in_thread(server)
    yield server
    stop()


def config_for(standin: PayPalStandIn, **overrides: Any) -> PayPalConfig:
    fields: dict[str, Any] = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "webhook_id": WEBHOOK_ID,
        "api_base": standin.base_url,
        "cert_hosts": [standin.base_url],  # http://127.0.0.1:<port>, written out
        **overrides,
    }
    return PayPalConfig(**fields)


def with_paypal(
    config: PayPalConfig,
    body: Callable[[PayPalProcessor], Awaitable[T]],
    clock: Callable[[], float] = lambda: NOW,
) -> T:
    async def main() -> T:
        async with aiohttp.ClientSession() as session:
            processor = PayPalProcessor(
                config,
                success_url="https://example.com/paid",
                cancel_url="https://example.com/cancelled",
                session=session,
                clock=clock,
            )
            return await body(processor)

    return asyncio.run(main())


def cert_url(standin: PayPalStandIn) -> str:
    return f"{standin.base_url}/certs/test.pem"


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def signed(
    body: bytes,
    signer: Signer,
    url: str,
    *,
    at: float = NOW,
    webhook_id: str = WEBHOOK_ID,
    transmission_id: str = "69cd13f0-d67a-11e5-baa3-778b53f4ae55",
) -> dict[str, str]:
    time = iso(at)
    crc = zlib.crc32(body)  # unsigned decimal, as PayPal documents
    message = f"{transmission_id}|{time}|{webhook_id}|{crc}"
    return {
        "PAYPAL-TRANSMISSION-ID": transmission_id,
        "PAYPAL-TRANSMISSION-TIME": time,
        "PAYPAL-TRANSMISSION-SIG": rsa_sign(signer.key, message),
        "PAYPAL-CERT-URL": url,
        "PAYPAL-AUTH-ALGO": "SHA256withRSA",
    }


def capture_event(
    kind: str = "PAYMENT.CAPTURE.COMPLETED",
    *,
    value: str = "10.00",
    currency: str = "USD",
    custom_id: str | None = "acct_7",
) -> bytes:
    resource: dict[str, Any] = {
        "id": "2GG279541U471931P",
        "status": "COMPLETED",
        "amount": {"currency_code": currency, "value": value},
        "final_capture": True,
        "seller_receivable_breakdown": {
            "gross_amount": {"currency_code": currency, "value": value},
            "paypal_fee": {"currency_code": currency, "value": "0.64"},
        },
        "create_time": "2025-10-09T18:13:00Z",
    }
    if custom_id is not None:
        resource["custom_id"] = custom_id
    doc = {
        "id": "WH-58D329510W468432D-8HN650336L201105X",
        "event_version": "1.0",
        "create_time": "2025-10-09T18:13:20.000Z",
        "resource_type": "capture",
        "resource_version": "2.0",
        "event_type": kind,
        "summary": f"Payment completed for {currency} {value}",
        "resource": resource,
    }
    return orjson.dumps(doc)


def verify(
    standin: PayPalStandIn, body: bytes, headers: dict[str, str], **overrides: Any
) -> PaymentEvent | None:
    return with_paypal(config_for(standin, **overrides), lambda p: p.verify_webhook(body, headers))


# ------------------------------------------------------------------ checkout


def test_an_order_is_created_with_a_token_and_the_account_as_custom_id(
    standin: PayPalStandIn,
) -> None:
    before = len(standin.requests)
    checkout = with_paypal(
        config_for(standin),
        lambda p: p.create_checkout(account_id="acct_7", amount=Decimal("12.5"), currency="usd"),
    )
    assert checkout.processor == "paypal"
    assert checkout.url == f"https://www.sandbox.paypal.com/checkoutnow?token={checkout.id}"
    token_call, order_call = standin.requests[before:]
    assert token_call.path == "/v1/oauth2/token"
    expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert token_call.headers["authorization"] == f"Basic {expected}"
    assert token_call.body == {"grant_type": "client_credentials"}
    assert order_call.path == "/v2/checkout/orders"
    assert order_call.headers["authorization"] == f"Bearer {standin.tokens[-1]}"
    order = order_call.body
    assert order["intent"] == "CAPTURE"
    assert order["purchase_units"] == [
        {"amount": {"currency_code": "USD", "value": "12.50"}, "custom_id": "acct_7"}
    ]
    context = order["payment_source"]["paypal"]["experience_context"]
    assert context["return_url"] == "https://example.com/paid"
    assert context["cancel_url"] == "https://example.com/cancelled"


def test_the_access_token_is_reused_until_it_is_about_to_expire(standin: PayPalStandIn) -> None:
    clock = Clock()

    async def two_orders_then_later(p: PayPalProcessor) -> None:
        await p.create_checkout(account_id="a", amount=Decimal(5), currency="EUR")
        await p.create_checkout(account_id="a", amount=Decimal(6), currency="EUR")
        clock.now += 32_400
        await p.create_checkout(account_id="a", amount=Decimal(7), currency="EUR")

    issued = len(standin.tokens)
    with_paypal(config_for(standin), two_orders_then_later, clock)
    assert len(standin.tokens) == issued + 2


def test_zero_decimal_currencies_are_sent_without_decimals(standin: PayPalStandIn) -> None:
    with_paypal(
        config_for(standin),
        lambda p: p.create_checkout(account_id="a", amount=Decimal("1500"), currency="JPY"),
    )
    amount = standin.requests[-1].body["purchase_units"][0]["amount"]
    assert amount == {"currency_code": "JPY", "value": "1500"}
    with pytest.raises(InvalidRequest):
        with_paypal(
            config_for(standin),
            lambda p: p.create_checkout(account_id="a", amount=Decimal("1.5"), currency="JPY"),
        )


def test_refusals_and_bad_credentials_become_upstream_errors_without_secrets(
    standin: PayPalStandIn,
) -> None:
    detail = {"issue": "CURRENCY_NOT_SUPPORTED", "description": "Currency code is not supported"}
    standin.fail_next(
        422,
        {
            "name": "UNPROCESSABLE_ENTITY",
            "message": "The requested action could not be performed",
            "details": [detail],
        },
    )
    with pytest.raises(UpstreamRejected) as refused:
        with_paypal(
            config_for(standin),
            lambda p: p.create_checkout(account_id="a", amount=Decimal(5), currency="XYZ"),
        )
    assert "could not be performed" in refused.value.message
    with pytest.raises(UpstreamError) as failed:
        with_paypal(
            config_for(standin, client_secret="wrong-secret-value"),
            lambda p: p.create_checkout(account_id="a", amount=Decimal(5), currency="USD"),
        )
    assert failed.value.status == 502 and not failed.value.retryable
    for error in (refused.value, failed.value):
        assert CLIENT_SECRET not in str(error) and "wrong-secret-value" not in str(error)


# ------------------------------------------------------------------ webhooks


def test_a_completed_capture_is_a_payment_event(standin: PayPalStandIn, signer: Signer) -> None:
    body = capture_event()
    assert verify(standin, body, signed(body, signer, cert_url(standin))) == PaymentEvent(
        processor="paypal",
        event_id="WH-58D329510W468432D-8HN650336L201105X",
        account_id="acct_7",
        amount=Decimal("10.00"),
        currency="USD",
    )


@pytest.mark.parametrize(
    ("value", "currency", "amount"),
    [
        ("19.99", "EUR", Decimal("19.99")),
        ("1500", "JPY", Decimal(1500)),
        ("0.01", "GBP", Decimal("0.01")),
    ],
)
def test_amounts_are_exact_decimals(
    standin: PayPalStandIn, signer: Signer, value: str, currency: str, amount: Decimal
) -> None:
    body = capture_event(value=value, currency=currency)
    payment = verify(standin, body, signed(body, signer, cert_url(standin)))
    assert payment is not None
    assert payment.amount == amount and str(payment.amount) == value
    assert payment.currency == currency


def test_the_certificate_is_downloaded_once_per_url(standin: PayPalStandIn, signer: Signer) -> None:
    body = capture_event()

    async def three(p: PayPalProcessor) -> None:
        for n in range(3):
            headers = signed(body, signer, cert_url(standin), transmission_id=f"tx-{n}")
            assert await p.verify_webhook(body, headers) is not None

    before = standin.cert_downloads
    with_paypal(config_for(standin), three)
    assert standin.cert_downloads == before + 1


def test_an_approved_order_is_captured_once_and_ignored(
    standin: PayPalStandIn, signer: Signer
) -> None:
    order = {
        "id": "WH-1AP12345AB123456C-1AB23456CD789012E",
        "event_type": "CHECKOUT.ORDER.APPROVED",
        "resource_type": "checkout-order",
        "resource": {
            "id": "5O190127TN364715T",
            "intent": "CAPTURE",
            "status": "APPROVED",
            "purchase_units": [
                {"amount": {"currency_code": "USD", "value": "10.00"}, "custom_id": "acct_7"}
            ],
        },
    }
    body = orjson.dumps(order)
    headers = signed(body, signer, cert_url(standin))
    assert verify(standin, body, headers) is None
    assert verify(standin, body, headers) is None  # redelivered: the same capture, no error
    captures = [r for r in standin.requests if r.path.endswith("/capture")]
    assert [r.path for r in captures[-2:]] == ["/v2/checkout/orders/5O190127TN364715T/capture"] * 2
    assert captures[-1].headers["paypal-request-id"] == captures[-2].headers["paypal-request-id"]
    standin.captured["5O190127TN364715T"] = "someone-else"
    assert verify(standin, body, headers) is None  # ORDER_ALREADY_CAPTURED is fine too


@pytest.mark.parametrize(
    "kind", ["PAYMENT.CAPTURE.PENDING", "PAYMENT.CAPTURE.REFUNDED", "CHECKOUT.ORDER.COMPLETED"]
)
def test_other_event_types_are_authentic_but_ignored(
    standin: PayPalStandIn, signer: Signer, kind: str
) -> None:
    body = capture_event(kind)
    assert verify(standin, body, signed(body, signer, cert_url(standin))) is None


def test_a_capture_without_custom_id_is_ignored(standin: PayPalStandIn, signer: Signer) -> None:
    body = capture_event(custom_id=None)
    assert verify(standin, body, signed(body, signer, cert_url(standin))) is None


@pytest.mark.parametrize(
    "drop",
    [
        "PAYPAL-TRANSMISSION-ID",
        "PAYPAL-TRANSMISSION-TIME",
        "PAYPAL-TRANSMISSION-SIG",
        "PAYPAL-CERT-URL",
        "PAYPAL-AUTH-ALGO",
    ],
)
def test_missing_signature_headers_are_rejected(
    standin: PayPalStandIn, signer: Signer, drop: str
) -> None:
    body = capture_event()
    headers = signed(body, signer, cert_url(standin))
    del headers[drop]
    with pytest.raises(WebhookRejected, match="unsigned") as rejected:
        verify(standin, body, headers)
    assert rejected.value.status == 400


def test_an_unsigned_webhook_is_rejected(standin: PayPalStandIn) -> None:
    with pytest.raises(WebhookRejected, match="unsigned"):
        verify(standin, capture_event(), {})


def test_a_signature_by_another_key_is_rejected(standin: PayPalStandIn) -> None:
    impostor = make_certificate(not_before=NOW - DAY, not_after=NOW + DAY)
    body = capture_event()
    with pytest.raises(WebhookRejected, match="bad signature"):
        verify(standin, body, signed(body, impostor, cert_url(standin)))


@pytest.mark.parametrize(
    ("webhook_id", "transmission_id"),
    [("OTHERWEBHOOK", "69cd13f0-d67a-11e5-baa3-778b53f4ae55"), (WEBHOOK_ID, "another-one")],
)
def test_a_signature_over_other_fields_is_rejected(
    standin: PayPalStandIn, signer: Signer, webhook_id: str, transmission_id: str
) -> None:
    body = capture_event()
    url = cert_url(standin)
    headers = signed(body, signer, url, webhook_id=webhook_id, transmission_id=transmission_id)
    headers["PAYPAL-TRANSMISSION-ID"] = "69cd13f0-d67a-11e5-baa3-778b53f4ae55"
    with pytest.raises(WebhookRejected, match="bad signature"):
        verify(standin, body, headers)


def test_a_tampered_body_is_rejected(standin: PayPalStandIn, signer: Signer) -> None:
    body = capture_event()
    headers = signed(body, signer, cert_url(standin))
    with pytest.raises(WebhookRejected, match="bad signature"):
        verify(standin, body.replace(b"10.00", b"99.00"), headers)


@pytest.mark.parametrize("sig", ["not base64!", "", "AAAA"])
def test_garbled_signatures_are_rejected(standin: PayPalStandIn, signer: Signer, sig: str) -> None:
    body = capture_event()
    headers = signed(body, signer, cert_url(standin))
    headers["PAYPAL-TRANSMISSION-SIG"] = sig
    with pytest.raises(WebhookRejected):
        verify(standin, body, headers)


@pytest.mark.parametrize("offset", [-301, 301, -DAY])
def test_stale_or_future_transmissions_are_rejected(
    standin: PayPalStandIn, signer: Signer, offset: float
) -> None:
    body = capture_event()
    with pytest.raises(WebhookRejected, match="tolerance"):
        verify(standin, body, signed(body, signer, cert_url(standin), at=NOW + offset))


@pytest.mark.parametrize("time", ["yesterday", "2025-10-09T18:13:20"])
def test_unreadable_transmission_times_are_rejected(
    standin: PayPalStandIn, signer: Signer, time: str
) -> None:
    body = capture_event()
    headers = signed(body, signer, cert_url(standin))
    headers["PAYPAL-TRANSMISSION-TIME"] = time
    with pytest.raises(WebhookRejected, match="PAYPAL-TRANSMISSION-TIME"):
        verify(standin, body, headers)


def test_another_algorithm_is_rejected(standin: PayPalStandIn, signer: Signer) -> None:
    body = capture_event()
    headers = signed(body, signer, cert_url(standin))
    headers["PAYPAL-AUTH-ALGO"] = "SHA1withRSA"
    with pytest.raises(WebhookRejected, match="PAYPAL-AUTH-ALGO"):
        verify(standin, body, headers)


@pytest.mark.parametrize(
    "url_of",
    [
        lambda base: "http://evil.example.com/certs/test.pem",
        lambda base: base.replace("http://", "https://") + "/certs/test.pem",  # scheme differs
        lambda base: base.replace("127.0.0.1", "localhost") + "/certs/test.pem",
        lambda base: base.replace("http://", "http://user:pw@") + "/certs/test.pem",
        lambda base: "https://api.paypal.com.evil.example/certs/test.pem",
        lambda base: "file:///etc/passwd",
        lambda base: "http://127.0.0.1:notaport/x",
    ],
)
def test_certificates_from_hosts_not_allowed_are_refused_unfetched(
    standin: PayPalStandIn, signer: Signer, url_of: Callable[[str], str]
) -> None:
    body = capture_event()
    before = standin.cert_downloads
    with pytest.raises(WebhookRejected, match="allowed host"):
        verify(standin, body, signed(body, signer, url_of(standin.base_url)))
    assert standin.cert_downloads == before


def test_by_default_only_https_on_paypal_hosts_is_allowed(
    standin: PayPalStandIn, signer: Signer
) -> None:
    body = capture_event()
    with pytest.raises(WebhookRejected, match="allowed host"):
        verify(standin, body, signed(body, signer, cert_url(standin)), cert_hosts=PAYPAL_CERT_HOSTS)
    defaults = PayPalConfig(client_id="c", client_secret="s", webhook_id="w")
    assert ("https", "api.paypal.com", 443) in defaults.cert_origins()
    assert all(scheme == "https" for scheme, _, _ in defaults.cert_origins())


def test_expired_or_foreign_certificates_are_refused(
    standin: PayPalStandIn, signer: Signer
) -> None:
    expired = make_certificate(not_before=NOW - 2 * DAY, not_after=NOW - DAY)
    foreign = make_certificate(
        not_before=NOW - DAY, not_after=NOW + DAY, common_name="evil.example"
    )
    body = capture_event()
    try:
        standin.cert_pem = expired.pem
        with pytest.raises(WebhookRejected, match="expired"):
            verify(standin, body, signed(body, expired, cert_url(standin)))
        standin.cert_pem = foreign.pem
        with pytest.raises(WebhookRejected, match="not issued to paypal"):
            verify(standin, body, signed(body, foreign, cert_url(standin)))
        standin.cert_pem = b"not a certificate"
        with pytest.raises(WebhookRejected, match="no certificate"):
            verify(standin, body, signed(body, foreign, cert_url(standin)))
    finally:
        standin.cert_pem = signer.pem


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "malformed JSON"),
        (orjson.dumps({"event_type": "PAYMENT.CAPTURE.COMPLETED"}), "no id"),
        (
            orjson.dumps(
                {
                    "id": "WH-1",
                    "event_type": "PAYMENT.CAPTURE.COMPLETED",
                    "resource": {"custom_id": "a"},
                }
            ),
            "amount",
        ),
    ],
)
def test_signed_but_malformed_events_are_rejected(
    standin: PayPalStandIn, signer: Signer, body: bytes, reason: str
) -> None:
    with pytest.raises(WebhookRejected, match=reason):
        verify(standin, body, signed(body, signer, cert_url(standin)))


def test_a_malformed_amount_is_rejected(standin: PayPalStandIn, signer: Signer) -> None:
    body = capture_event(value="ten")
    with pytest.raises(WebhookRejected, match="no number"):
        verify(standin, body, signed(body, signer, cert_url(standin)))


def test_an_unreachable_certificate_host_is_a_retryable_upstream_error(signer: Signer) -> None:
    dead = "http://127.0.0.1:9"
    config = PayPalConfig(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        webhook_id=WEBHOOK_ID,
        api_base=dead,
        cert_hosts=[dead],
    )
    body = capture_event()
    headers = signed(body, signer, f"{dead}/certs/test.pem")
    with pytest.raises(UpstreamError) as failed:
        with_paypal(config, lambda p: p.verify_webhook(body, headers))
    assert failed.value.retryable

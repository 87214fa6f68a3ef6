"""Top-ups through the gateway: checkouts for the caller's account, and webhooks from
Stripe, PayPal and Coinbase Commerce that credit it exactly once — and change nothing when
they are unsigned, mis-signed, replayed or for an unknown account."""

from __future__ import annotations

import hashlib
import hmac
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.e2e.conftest import Upstreams, gateway_config
from tests.e2e.harness import RunningGateway, start_gateway
from tests.payments.standins import (
    CoinbaseStandIn,
    PayPalStandIn,
    Signer,
    StripeStandIn,
    make_certificate,
    rsa_sign,
    run_in_thread,
)

STRIPE_WHSEC = "whsec_e2e_secret"
COINBASE_SECRET = "cb-shared-secret"
PAYPAL_WEBHOOK_ID = "WH-E2E-1"


@dataclass
class Setup:
    gateway: RunningGateway
    stripe: StripeStandIn
    paypal: PayPalStandIn
    coinbase: CoinbaseStandIn
    signer: Signer


@pytest.fixture(scope="module")
def setup(
    database_url: str, upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    stripe, paypal, coinbase = (
        StripeStandIn("sk_test_e2e"),
        PayPalStandIn("pp-id", "pp-secret"),
        CoinbaseStandIn("cb-key"),
    )
    signer = make_certificate(not_before=time.time() - 86400, not_after=time.time() + 86400)
    paypal.cert_pem = signer.pem
    stops = [run_in_thread(s)[1] for s in (stripe, paypal, coinbase)]
    payments = f"""
payments:
  success_url: https://example.com/paid
  cancel_url: https://example.com/cancelled
  stripe: {{secret_key: sk_test_e2e, webhook_secret: {STRIPE_WHSEC}, api_base: {stripe.base_url}}}
  paypal:
    client_id: pp-id
    client_secret: pp-secret
    webhook_id: {PAYPAL_WEBHOOK_ID}
    api_base: {paypal.base_url}
    cert_hosts: [{paypal.base_url}]
  coinbase: {{api_key: cb-key, webhook_secret: {COINBASE_SECRET}, api_base: {coinbase.base_url}}}
"""
    directory: Path = tmp_path_factory.mktemp("payments")
    gateway = start_gateway(directory, gateway_config(database_url, upstreams.urls) + payments)
    yield Setup(gateway, stripe, paypal, coinbase, signer)
    gateway.stop()
    for stop in stops:
        stop()


def balance(gateway: RunningGateway, account_id: str) -> str:
    value: str = gateway.admin("GET", f"/admin/accounts/{account_id}").json()["balance"]
    return value


def stripe_event(account_id: str, event_id: str, cents: int = 1000) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": "checkout.session.completed",
            "data": {
                "object": {
                    "id": "cs_test_1",
                    "object": "checkout.session",
                    "amount_total": cents,
                    "currency": "usd",
                    "payment_status": "paid",
                    "metadata": {"account_id": account_id},
                    "client_reference_id": account_id,
                }
            },
        }
    )
    stamp = int(time.time())
    signature = hmac.new(
        STRIPE_WHSEC.encode(), f"{stamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return body, {"Stripe-Signature": f"t={stamp},v1={signature}"}


def coinbase_event(account_id: str, event_id: str) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(
        {
            "id": 1,
            "event": {
                "id": event_id,
                "type": "charge:confirmed",
                "data": {
                    "id": "charge-1",
                    "metadata": {"account_id": account_id},
                    "pricing": {"local": {"amount": "7.50", "currency": "USD"}},
                },
            },
        }
    )
    digest = hmac.new(COINBASE_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"X-CC-Webhook-Signature": digest}


def paypal_event(
    setup: Setup, account_id: str, event_id: str, cert_url: str | None = None
) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(
        {
            "id": event_id,
            "event_type": "PAYMENT.CAPTURE.COMPLETED",
            "resource_type": "capture",
            "resource": {
                "id": "CAP-1",
                "status": "COMPLETED",
                "custom_id": account_id,
                "amount": {"currency_code": "USD", "value": "12.34"},
            },
        }
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    transmission = "tx-" + event_id
    message = f"{transmission}|{stamp}|{PAYPAL_WEBHOOK_ID}|{zlib.crc32(body)}"
    return body, {
        "PAYPAL-TRANSMISSION-ID": transmission,
        "PAYPAL-TRANSMISSION-TIME": stamp,
        "PAYPAL-TRANSMISSION-SIG": rsa_sign(setup.signer.key, message),
        "PAYPAL-CERT-URL": cert_url or f"{setup.paypal.base_url}/certs/test.pem",
        "PAYPAL-AUTH-ALGO": "SHA256withRSA",
    }


def post(gateway: RunningGateway, processor: str, signed: tuple[bytes, dict[str, str]]) -> Any:
    body, headers = signed
    return gateway.http.post(
        f"/webhooks/{processor}",
        content=body,
        headers={**headers, "Content-Type": "application/json"},
    )


def test_a_checkout_is_created_for_the_callers_account(setup: Setup) -> None:
    gateway = setup.gateway
    account_id = gateway.new_account(credit=None)
    key = gateway.new_key(account_id)
    response = gateway.post(
        "/v1/account/topups", key, json={"amount": "10.00", "processor": "stripe"}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["url"].startswith("https://checkout.stripe.com/")
    assert (body["amount"], body["currency"]) == ("10.000000", "USD")
    form = setup.stripe.requests[-1].body
    assert form["metadata[account_id]"] == account_id
    assert form["line_items[0][price_data][unit_amount]"] == "1000"
    for processor in ("paypal", "coinbase"):
        response = gateway.post(
            "/v1/account/topups", key, json={"amount": "5", "processor": processor}
        )
        assert response.status_code == 201, response.text
    for bad in (
        {"amount": "5", "processor": "bitpay"},
        {"amount": "-5", "processor": "stripe"},
        {"amount": "1.234", "processor": "stripe"},
        {"amount": 5, "processor": "stripe"},
    ):
        assert gateway.post("/v1/account/topups", key, json=bad).status_code == 400
    assert gateway.post("/v1/account/topups", None, json={"amount": "5"}).status_code == 401


@pytest.mark.parametrize("processor", ["stripe", "coinbase", "paypal"])
def test_a_webhook_credits_once(setup: Setup, processor: str) -> None:
    gateway = setup.gateway
    account_id = gateway.new_account(credit=None)
    event_id = f"evt_{processor}_{account_id}"
    make = {
        "stripe": lambda: stripe_event(account_id, event_id),
        "coinbase": lambda: coinbase_event(account_id, event_id),
        "paypal": lambda: paypal_event(setup, account_id, event_id),
    }[processor]
    expected = {"stripe": "10.000000", "coinbase": "7.500000", "paypal": "12.340000"}[processor]
    first = post(gateway, processor, make())
    assert (first.status_code, first.json()) == (200, {"status": "credited"})
    assert balance(gateway, account_id) == expected
    replay = post(gateway, processor, make())
    assert (replay.status_code, replay.json()) == (200, {"status": "duplicate"})
    assert balance(gateway, account_id) == expected


@pytest.mark.parametrize("processor", ["stripe", "coinbase", "paypal"])
def test_bad_webhooks_are_400_and_change_nothing(setup: Setup, processor: str) -> None:
    gateway = setup.gateway
    account_id = gateway.new_account(credit=None)
    make = {
        "stripe": stripe_event,
        "coinbase": coinbase_event,
        "paypal": lambda a, e: paypal_event(setup, a, e),
    }[processor]
    body, headers = make(account_id, "evt_bad_" + account_id)
    cases: list[tuple[bytes, dict[str, str]]] = [
        (body, {}),  # unsigned
        (body.replace(b"{", b"{ ", 1), headers),  # changed after signing
        make("acct_nobody", "evt_nobody_" + account_id),  # authentic, unknown account
    ]
    wrong = {k: v for k, v in headers.items()}
    signature_header = next(k for k in wrong if "SIG" in k.upper() or "Signature" in k)
    wrong[signature_header] = wrong[signature_header][:-4] + "AAAA"
    cases.append((body, wrong))  # mis-signed
    if processor == "paypal":
        cases.append(
            paypal_event(
                setup,
                account_id,
                "evt_host_" + account_id,
                cert_url="https://evil.example.com/cert.pem",
            )
        )
    for number, case in enumerate(cases):
        response = post(gateway, processor, case)
        assert response.status_code == 400, (processor, number, response.text)
        assert response.json()["error"]["type"] == "invalid_request_error"
    assert balance(gateway, account_id) == "0.000000"


def test_unknown_processor_webhook_is_404(setup: Setup) -> None:
    assert setup.gateway.http.post("/webhooks/bitpay", content=b"{}").status_code == 404


def test_a_webhook_the_ledger_cannot_hold_is_400_and_credits_nothing(setup: Setup) -> None:
    """A payment that would take a balance past the ledger's 64-bit nano-units is refused
    like any other event that cannot be credited (was a 500, which processors retry)."""
    gateway = setup.gateway
    full = gateway.new_account(credit="9223372036.854775807")  # the most a balance holds
    empty = gateway.new_account(credit=None)
    cases = [
        (full, stripe_event(full, "evt_full_" + full)),  # $10 more than the most
        (empty, stripe_event(empty, "evt_huge_" + empty, cents=10**12)),  # alone too much
    ]
    for account_id, signed in cases:
        before = balance(gateway, account_id)
        response = post(gateway, "stripe", signed)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("invalid_request_error", "webhook_rejected")
        assert "beyond what the ledger can hold" in error["message"]
        assert balance(gateway, account_id) == before
    # Nothing was half-written: an ordinary payment to the same account still credits.
    later = post(gateway, "stripe", stripe_event(empty, "evt_later_" + empty))
    assert (later.status_code, later.json()) == (200, {"status": "credited"})
    assert balance(gateway, empty) == "10.000000"


def test_an_event_id_already_credited_to_another_account_is_400(setup: Setup) -> None:
    """The same processor event naming a second account credits nothing (was a 500)."""
    gateway = setup.gateway
    first = gateway.new_account(credit=None)
    second = gateway.new_account(credit=None)
    event_id = "evt_twice_" + first
    credited = post(gateway, "stripe", stripe_event(first, event_id))
    assert (credited.status_code, credited.json()) == (200, {"status": "credited"})
    again = post(gateway, "stripe", stripe_event(second, event_id))
    assert again.status_code == 400, again.text
    assert again.json()["error"]["code"] == "webhook_rejected"
    assert balance(gateway, first) == "10.000000"
    assert balance(gateway, second) == "0.000000"

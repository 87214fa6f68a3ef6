"""No credential of any processor reaches a log record, an exception or a repr, on success or
failure paths (logging at DEBUG, the official Stripe library's included). Coinbase's stand-in
even echoes the API key in an error message: the adapter scrubs it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Iterator
from decimal import Decimal

import aiohttp
import orjson
import pytest

from tests.payments.standins import (
    CoinbaseStandIn,
    PayPalStandIn,
    StandIn,
    StripeStandIn,
    run_in_thread,
)
from tokenyard.config.payments import PaymentsConfig
from tokenyard.errors import TokenyardError
from tokenyard.payments import build_processors

NOW = 1_760_000_000.0
SECRETS = {
    "stripe_key": "sk_test_SECRETstripe0001",
    "stripe_whsec": "whsec_SECRETstripe0002",
    "paypal_secret": "SECRETpaypal0003",
    "coinbase_key": "SECRETcoinbase0004",
    "coinbase_whsec": "SECRETcoinbase0005",
}


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, StandIn]]:
    standins: dict[str, StandIn] = {
        "stripe": StripeStandIn(SECRETS["stripe_key"]),
        "paypal": PayPalStandIn("client", SECRETS["paypal_secret"]),
        "coinbase": CoinbaseStandIn(SECRETS["coinbase_key"]),
    }
    stops = [run_in_thread(s)[1] for s in standins.values()]
    yield standins
    for stop in stops:
        stop()


def config(servers: dict[str, StandIn]) -> PaymentsConfig:
    return PaymentsConfig.model_validate(
        {
            "success_url": "https://example.com/paid",
            "stripe": {
                "secret_key": SECRETS["stripe_key"],
                "webhook_secret": SECRETS["stripe_whsec"],
                "api_base": servers["stripe"].base_url,
            },
            "paypal": {
                "client_id": "client",
                "client_secret": SECRETS["paypal_secret"],
                "webhook_id": "WH1",
                "api_base": servers["paypal"].base_url,
            },
            "coinbase": {
                "api_key": SECRETS["coinbase_key"],
                "webhook_secret": SECRETS["coinbase_whsec"],
                "api_base": servers["coinbase"].base_url,
            },
        }
    )


def test_no_secret_in_logs_errors_or_reprs(
    servers: dict[str, StandIn], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    body = orjson.dumps({"id": "evt_1", "type": "payment_intent.created", "data": {"object": {}}})

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            processors = build_processors(config(servers), session, lambda: NOW)
            seen.append(repr(processors))
            for processor in processors.values():
                checkout = await processor.create_checkout(
                    account_id="acct", amount=Decimal("5.00"), currency="USD"
                )
                seen.append(repr(checkout))
                for headers in ({}, {"Stripe-Signature": "t=1,v1=00"}):
                    try:
                        await processor.verify_webhook(body, headers)
                    except TokenyardError as exc:
                        seen.extend((str(exc), repr(exc)))
            servers["coinbase"].fail_next(500, {"error": {"message": SECRETS["coinbase_key"]}})
            # Stripe masks keys in its own messages (the official library logs them at INFO).
            masked = "Invalid API Key provided: sk_test_****0001"
            servers["stripe"].fail_next(400, {"error": {"message": masked}})
            for name in ("coinbase", "stripe"):
                try:
                    await processors[name].create_checkout(
                        account_id="a", amount=Decimal(1), currency="USD"
                    )
                except TokenyardError as exc:
                    seen.extend((str(exc), repr(exc)))
            secret = SECRETS["coinbase_whsec"].encode()
            signed = {"X-CC-Webhook-Signature": hmac.new(secret, body, hashlib.sha256).hexdigest()}
            try:
                await processors["coinbase"].verify_webhook(body, signed)
            except TokenyardError as exc:
                seen.extend((str(exc), repr(exc)))

    asyncio.run(main())
    assert len(seen) > 8
    text = "\n".join(seen) + caplog.text
    for secret in SECRETS.values():
        assert secret not in text

"""What the processors share: money conversions, the error type, and build_processors."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import aiohttp
import pytest

from tokenyard.config.payments import PaymentsConfig
from tokenyard.errors import InvalidRequest
from tokenyard.payments import PaymentEvent, WebhookRejected, build_processors
from tokenyard.payments.base import (
    checked_currency,
    decimal_text,
    from_minor_units,
    minor_units,
    same_text,
)
from tokenyard.payments.coinbase import CoinbaseProcessor
from tokenyard.payments.paypal import PayPalProcessor
from tokenyard.payments.stripe import StripeProcessor


@pytest.mark.parametrize(
    ("amount", "exponent", "minor"),
    [("10", 2, 1000), ("12.34", 2, 1234), ("500", 0, 500), ("1.250", 3, 1250), ("0.01", 2, 1)],
)
def test_minor_units_are_exact(amount: str, exponent: int, minor: int) -> None:
    assert minor_units(Decimal(amount), exponent, "XXX") == minor
    assert from_minor_units(minor, exponent) == Decimal(amount)


@pytest.mark.parametrize("amount", ["0.001", "0", "-5", "NaN", "Infinity"])
def test_amounts_that_are_not_whole_minor_units_or_positive_are_invalid(amount: str) -> None:
    with pytest.raises(InvalidRequest):
        minor_units(Decimal(amount), 2, "USD")


def test_decimal_text_has_the_currency_places() -> None:
    assert decimal_text(Decimal("12.5"), 2, "USD") == "12.50"
    assert decimal_text(Decimal("1E+3"), 0, "JPY") == "1000"
    assert decimal_text(Decimal("7"), 3, "KWD") == "7.000"


def test_currencies_are_upper_case_iso_codes() -> None:
    assert checked_currency(" usd ") == "USD"
    for bad in ("US", "USDT", "U$D", "€UR", ""):
        with pytest.raises(InvalidRequest):
            checked_currency(bad)


def test_same_text_compares_any_header_value() -> None:
    assert same_text("abc", "abc")
    assert not same_text("abc", "abd")
    assert not same_text("abc", "\u00e9\u00e9\u00e9")


def test_a_rejected_webhook_is_a_400_client_error() -> None:
    error = WebhookRejected("stripe webhook: bad signature")
    assert isinstance(error, InvalidRequest)
    assert error.status == 400 and error.code == "webhook_rejected"
    assert error.body()["error"] == {
        "message": "stripe webhook: bad signature",
        "type": "invalid_request_error",
        "param": None,
        "code": "webhook_rejected",
    }


def test_payment_events_are_values() -> None:
    """Equal by their fields and hashable; read-only to mypy (tests/test_immutable.py)."""
    event = PaymentEvent("stripe", "evt_1", "acct", Decimal("1.00"), "USD")
    assert event == PaymentEvent("stripe", "evt_1", "acct", Decimal("1.0"), "USD")
    assert {event: 1}[PaymentEvent("stripe", "evt_1", "acct", Decimal("1.0"), "USD")] == 1


def test_build_processors_makes_one_per_configured_section() -> None:
    config = PaymentsConfig.model_validate(
        {
            "success_url": "https://example.com/paid",
            "stripe": {"secret_key": "sk_x", "webhook_secret": "whsec_x"},
            "paypal": {"client_id": "c", "client_secret": "s", "webhook_id": "w"},
            "coinbase": {"api_key": "k", "webhook_secret": "s"},
        }
    )

    async def build(config: PaymentsConfig) -> dict[str, type]:
        async with aiohttp.ClientSession() as session:
            built = build_processors(config, session, lambda: 0.0)
            assert all(p.name == name for name, p in built.items())
            return {name: type(p) for name, p in built.items()}

    assert asyncio.run(build(config)) == {
        "stripe": StripeProcessor,
        "paypal": PayPalProcessor,
        "coinbase": CoinbaseProcessor,
    }
    assert asyncio.run(build(PaymentsConfig())) == {}

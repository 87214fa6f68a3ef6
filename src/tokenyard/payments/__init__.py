"""Payment processors (Stripe, PayPal, Coinbase Commerce): hosted checkouts and verified
"money arrived" webhooks. The port and its values are in :mod:`tokenyard.payments.base`."""

from __future__ import annotations

import aiohttp

from tokenyard.config.payments import PaymentsConfig
from tokenyard.payments.base import Checkout, Clock, PaymentEvent, Processor, WebhookRejected

__all__ = [
    "Checkout",
    "PaymentEvent",
    "Processor",
    "WebhookRejected",
    "build_processors",
]


def build_processors(
    config: PaymentsConfig, session: aiohttp.ClientSession, clock: Clock
) -> dict[str, Processor]:
    """One processor per configured section, by name. They keep ``session`` and ``clock``
    (owned by the caller) and no other state than caches (PayPal's token and certificates)."""
    processors: dict[str, Processor] = {}
    success_url, cancel_url = config.success_url, config.cancel_url
    if success_url is None:  # the config requires it whenever a processor is configured
        return processors
    # Each processor's module (the stripe library above all) loads only when configured.
    if config.stripe is not None:
        from tokenyard.payments.stripe import StripeProcessor

        processors["stripe"] = StripeProcessor(
            config.stripe,
            success_url=success_url,
            cancel_url=cancel_url,
            session=session,
            clock=clock,
        )
    if config.paypal is not None:
        from tokenyard.payments.paypal import PayPalProcessor

        processors["paypal"] = PayPalProcessor(
            config.paypal,
            success_url=success_url,
            cancel_url=cancel_url,
            session=session,
            clock=clock,
        )
    if config.coinbase is not None:
        from tokenyard.payments.coinbase import CoinbaseProcessor

        processors["coinbase"] = CoinbaseProcessor(
            config.coinbase,
            success_url=success_url,
            cancel_url=cancel_url,
            session=session,
            clock=clock,
        )
    return processors

"""Stripe: a hosted Checkout Session to pay, a signed ``checkout.session.*`` event when paid.

Checkout Sessions are created with the official ``stripe`` library (its aiohttp transport,
on the injected session). Webhooks are verified here rather than with
``stripe.Webhook.construct_event``, whose age check reads the wall clock: the scheme is the
documented one — ``Stripe-Signature: t=<unix time>,v1=<hex>[,v1=...]`` where each ``v1`` is
HMAC-SHA256 of ``f"{t}.{raw body}"`` keyed with the endpoint's ``whsec_`` secret — and an
event older (or further in the future) than 300 seconds is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from decimal import Decimal

import aiohttp
import stripe
from stripe.params.checkout import SessionCreateParams

from tokenyard.config.payments import StripeConfig
from tokenyard.errors import InvalidRequest, UpstreamError, UpstreamRejected, UpstreamTimeout
from tokenyard.payments.base import (
    TIMEOUT_S,
    Checkout,
    Clock,
    PaymentEvent,
    WebhookRejected,
    checked_currency,
    field,
    from_minor_units,
    json_object,
    lower_headers,
    minor_units,
    same_text,
    text_field,
)

log = logging.getLogger(__name__)

TOLERANCE_S = 300
PRODUCT_NAME = "tokenyard credit"
PAID_EVENTS = frozenset({"checkout.session.completed", "checkout.session.async_payment_succeeded"})

# Stripe's own minor-unit rules (docs.stripe.com/currencies): every other currency has two
# decimals in the API, including ISK, HUF and TWD.
ZERO_DECIMAL = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV"}
    | {"XAF", "XOF", "XPF"}
)
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


def exponent(currency: str) -> int:
    if currency in ZERO_DECIMAL:
        return 0
    return 3 if currency in THREE_DECIMAL else 2


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The ``v1`` signature Stripe sends for ``body`` at ``timestamp``."""
    payload = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


class StripeProcessor:
    name = "stripe"

    def __init__(
        self,
        config: StripeConfig,
        *,
        success_url: str,
        cancel_url: str | None,
        session: aiohttp.ClientSession,
        clock: Clock,
    ) -> None:
        self._secret_key = config.secret_key
        self._webhook_secret = config.webhook_secret
        self._success_url = success_url
        self._cancel_url = cancel_url
        self._clock = clock
        self._client = stripe.StripeClient(
            config.secret_key,
            base_addresses={"api": config.api_base},
            http_client=stripe.AIOHTTPClient(session=session, timeout=TIMEOUT_S),
            max_network_retries=2,
        )

    def __repr__(self) -> str:
        return "StripeProcessor()"

    async def create_checkout(self, *, account_id: str, amount: Decimal, currency: str) -> Checkout:
        code = checked_currency(currency)
        unit_amount = minor_units(amount, exponent(code), code)
        if code in THREE_DECIMAL and unit_amount % 10:
            raise InvalidRequest(f"stripe takes {code} amounts in steps of 0.010", param="amount")
        params: SessionCreateParams = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": code.lower(),
                        "unit_amount": unit_amount,
                        "product_data": {"name": PRODUCT_NAME},
                    },
                }
            ],
            "metadata": {"account_id": account_id},
            "client_reference_id": account_id,
            "success_url": self._success_url,
        }
        if self._cancel_url is not None:
            params["cancel_url"] = self._cancel_url
        try:
            created = await self._client.v1.checkout.sessions.create_async(params)
        except stripe.StripeError as exc:
            raise self._translate(exc) from None
        if not created.url:
            raise UpstreamError(
                "payment processor stripe returned no checkout URL", retryable=False
            )
        return Checkout(processor=self.name, id=created.id, url=created.url)

    async def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> PaymentEvent | None:
        header = lower_headers(headers).get("stripe-signature")
        if not header:
            raise WebhookRejected("stripe webhook: unsigned, no Stripe-Signature header")
        timestamp, signatures = _parse_signature(header)
        expected = sign(body, self._webhook_secret, timestamp)
        if not any(same_text(expected, given) for given in signatures):
            raise WebhookRejected("stripe webhook: bad signature")
        if abs(self._clock() - timestamp) > TOLERANCE_S:
            raise WebhookRejected("stripe webhook: timestamp outside the 300 s tolerance")
        event = json_object(body, self.name)
        event_id = text_field(event, "id", self.name)
        kind = text_field(event, "type", self.name)
        if kind not in PAID_EVENTS:
            log.debug("stripe webhook %s of type %s ignored", event_id, kind)
            return None
        return self._payment(event_id, field(event, "data.object"))

    def _payment(self, event_id: str, checkout: object) -> PaymentEvent | None:
        if not isinstance(checkout, dict):
            raise WebhookRejected("stripe webhook: malformed event, no data.object")
        if field(checkout, "payment_status") != "paid":
            return None  # paid later: checkout.session.async_payment_succeeded follows
        account_id = field(checkout, "metadata.account_id") or field(
            checkout, "client_reference_id"
        )
        if not isinstance(account_id, str) or not account_id:
            log.warning("stripe webhook %s: checkout session without account_id ignored", event_id)
            return None
        minor = field(checkout, "amount_total")
        if not isinstance(minor, int) or isinstance(minor, bool) or minor < 0:
            raise WebhookRejected("stripe webhook: malformed event, no amount_total")
        code = text_field(checkout, "currency", self.name).upper()
        if len(code) != 3 or not code.isalpha():
            raise WebhookRejected("stripe webhook: malformed event, currency is no currency")
        if minor == 0:
            return None
        return PaymentEvent(
            processor=self.name,
            event_id=event_id,
            account_id=account_id,
            amount=from_minor_units(minor, exponent(code)),
            currency=code,
        )

    def _translate(self, exc: stripe.StripeError) -> UpstreamError:
        message = (exc.user_message or "").replace(self._secret_key, "***")[:300]
        if isinstance(exc, stripe.InvalidRequestError):
            return UpstreamRejected(
                f"payment processor stripe refused the checkout: {message or 'invalid request'}"
            )
        if isinstance(exc, stripe.APIConnectionError):
            if isinstance(exc.__cause__, TimeoutError):
                return UpstreamTimeout("payment processor stripe did not answer in time")
            return UpstreamError("payment processor stripe is unreachable", retryable=True)
        status = exc.http_status or 502
        return UpstreamError(
            f"payment processor stripe answered HTTP {status} ({type(exc).__name__})",
            retryable=isinstance(exc, stripe.RateLimitError) or status >= 500,
        )


def _parse_signature(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t" and timestamp is None:
            if not value.isdigit():
                raise WebhookRejected("stripe webhook: malformed Stripe-Signature header")
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise WebhookRejected("stripe webhook: malformed Stripe-Signature header")
    return timestamp, signatures

"""Coinbase Commerce: a hosted charge to pay in crypto, a signed ``charge:confirmed`` when paid.

Charges are created with ``POST {api_base}/charges`` (``X-CC-Api-Key``, ``X-CC-Version:
2018-03-22``). Webhooks carry ``X-CC-Webhook-Signature``: the hex HMAC-SHA256 of the raw
body keyed with the endpoint's shared secret, compared in constant time.

Coinbase signs no timestamp, so a captured webhook could be replayed at any later time.
That is harmless here by construction: the ledger reference of a payment is
``f"coinbase:{event id}"`` and is unique, so a replayed ``charge:confirmed`` credits
nothing twice.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from decimal import Decimal

import aiohttp

from tokenyard.config.payments import CoinbaseConfig
from tokenyard.errors import UpstreamError
from tokenyard.payments.base import (
    Checkout,
    Clock,
    PaymentEvent,
    WebhookRejected,
    api_failure,
    checked_currency,
    decimal_text,
    field,
    json_object,
    lower_headers,
    paid_event,
    same_text,
    send,
    text_field,
)
from tokenyard.wire.json import JSONDecodeError, loads

log = logging.getLogger(__name__)

API_VERSION = "2018-03-22"
CHARGE_NAME = "tokenyard credit"
PAID_EVENT = "charge:confirmed"
# ISO 4217 currencies without decimals that a charge may be priced in.
ZERO_DECIMAL = frozenset({"CLP", "ISK", "JPY", "KRW", "PYG", "UGX", "VND", "XAF", "XOF"})


def sign(body: bytes, secret: str) -> str:
    """The ``X-CC-Webhook-Signature`` Coinbase sends for ``body``."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class CoinbaseProcessor:
    name = "coinbase"

    def __init__(
        self,
        config: CoinbaseConfig,
        *,
        success_url: str,
        cancel_url: str | None,
        session: aiohttp.ClientSession,
        clock: Clock,
    ) -> None:
        self._api_key = config.api_key
        self._webhook_secret = config.webhook_secret
        self._api = config.api_base
        self._success_url = success_url
        self._cancel_url = cancel_url
        self._session = session
        self._clock = clock  # unused: Coinbase webhooks carry no time to check

    def __repr__(self) -> str:
        return f"CoinbaseProcessor(api_base={self._api!r})"

    async def create_checkout(self, *, account_id: str, amount: Decimal, currency: str) -> Checkout:
        code = checked_currency(currency)
        value = decimal_text(amount, 0 if code in ZERO_DECIMAL else 2, code)
        charge: dict[str, object] = {
            "name": CHARGE_NAME,
            "description": f"{value} {code} of tokenyard credit",
            "pricing_type": "fixed_price",
            "local_price": {"amount": value, "currency": code},
            "metadata": {"account_id": account_id},
            "redirect_url": self._success_url,
        }
        if self._cancel_url is not None:
            charge["cancel_url"] = self._cancel_url
        headers = {"X-CC-Api-Key": self._api_key, "X-CC-Version": API_VERSION}
        status, raw = await send(
            self._session,
            "POST",
            f"{self._api}/charges",
            processor=self.name,
            headers=headers,
            json=charge,
        )
        if status not in (200, 201):
            raise api_failure(status, raw, processor=self.name, secrets=(self._api_key,))
        try:
            doc = loads(raw)
        except JSONDecodeError:
            doc = None
        charge_id, url = field(doc, "data.id"), field(doc, "data.hosted_url")
        if not isinstance(charge_id, str) or not charge_id or not isinstance(url, str) or not url:
            raise UpstreamError(
                "payment processor coinbase returned no charge URL", retryable=False
            )
        return Checkout(processor=self.name, id=charge_id, url=url)

    async def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> PaymentEvent | None:
        given = lower_headers(headers).get("x-cc-webhook-signature")
        if not given:
            raise WebhookRejected("coinbase webhook: unsigned, no X-CC-Webhook-Signature header")
        if not same_text(sign(body, self._webhook_secret), given.strip().lower()):
            raise WebhookRejected("coinbase webhook: bad signature")
        event = field(json_object(body, self.name), "event")
        event_id = text_field(event, "id", self.name)
        kind = text_field(event, "type", self.name)
        if kind != PAID_EVENT:
            log.debug("coinbase webhook %s of type %s ignored", event_id, kind)
            return None
        return paid_event(
            self.name,
            event_id,
            event,
            account="data.metadata.account_id",
            amount="data.pricing.local.amount",
            currency="data.pricing.local.currency",
        )

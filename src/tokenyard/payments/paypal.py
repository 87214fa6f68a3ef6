"""PayPal (REST, Orders v2): an order to approve, a signed ``PAYMENT.CAPTURE.COMPLETED`` when
the money was taken.

Flow: ``create_checkout`` creates an order with ``intent: CAPTURE`` and sends the payer to
its ``payer-action`` (or ``approve``) link. An approved order holds no money yet: on the
``CHECKOUT.ORDER.APPROVED`` webhook this adapter captures the order (idempotently, keyed by
the order id) and returns None; PayPal then sends ``PAYMENT.CAPTURE.COMPLETED``, which is
the :class:`PaymentEvent`.

Webhooks are verified offline as PayPal documents ("self verification"): the signed message
is ``f"{transmission_id}|{transmission_time}|{webhook_id}|{crc32(raw body)}"`` (the CRC as
an unsigned decimal), signed SHA256withRSA, base64 in ``PAYPAL-TRANSMISSION-SIG``, checked
against the public key of the X.509 certificate at ``PAYPAL-CERT-URL``. That URL is only
fetched from an origin in ``cert_hosts`` (https on PayPal's API hosts by default), so the
certificate is as trustworthy as TLS to PayPal; it must also be in its validity period and
name a ``*.paypal.com`` subject. Transmissions more than 300 s old or ahead are refused.
"""

from __future__ import annotations

import base64
import binascii
import logging
import zlib
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from urllib.parse import quote, urlsplit

import aiohttp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tokenyard.config.payments import Origin, PayPalConfig
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
    send,
    text_field,
)
from tokenyard.wire.json import JSONDecodeError, loads

log = logging.getLogger(__name__)

TOLERANCE_S = 300
TOKEN_MARGIN_S = 60  # renew the access token this long before PayPal says it expires
CERT_CACHE_SIZE = 16
AUTH_ALGO = "SHA256withRSA"
CERT_SUBJECT_SUFFIX = ".paypal.com"
# PayPal's currencies without decimals (developer.paypal.com/reference/currency-codes).
ZERO_DECIMAL = frozenset({"HUF", "JPY", "TWD"})
_SIGNATURE_HEADERS = (
    "paypal-transmission-id",
    "paypal-transmission-time",
    "paypal-transmission-sig",
    "paypal-cert-url",
    "paypal-auth-algo",
)


def signed_message(
    transmission_id: str, transmission_time: str, webhook_id: str, body: bytes
) -> str:
    return f"{transmission_id}|{transmission_time}|{webhook_id}|{zlib.crc32(body)}"


class PayPalProcessor:
    name = "paypal"

    def __init__(
        self,
        config: PayPalConfig,
        *,
        success_url: str,
        cancel_url: str | None,
        session: aiohttp.ClientSession,
        clock: Clock,
    ) -> None:
        self._config = config
        self._api = config.api_base
        self._cert_origins = config.cert_origins()
        self._success_url = success_url
        self._cancel_url = cancel_url
        self._session = session
        self._clock = clock
        self._token: tuple[str, float] | None = None  # (access token, renew after)
        self._certs: dict[str, x509.Certificate] = {}

    def __repr__(self) -> str:
        return f"PayPalProcessor(api_base={self._api!r})"

    # ------------------------------------------------------------------ checkout

    async def create_checkout(self, *, account_id: str, amount: Decimal, currency: str) -> Checkout:
        code = checked_currency(currency)
        value = decimal_text(amount, 0 if code in ZERO_DECIMAL else 2, code)
        context = {
            "return_url": self._success_url,
            "cancel_url": self._cancel_url or self._success_url,
            "user_action": "PAY_NOW",
            "shipping_preference": "NO_SHIPPING",
        }
        order = {
            "intent": "CAPTURE",
            "purchase_units": [
                {"amount": {"currency_code": code, "value": value}, "custom_id": account_id}
            ],
            "payment_source": {"paypal": {"experience_context": context}},
        }
        doc = await self._call("/v2/checkout/orders", order)
        order_id = field(doc, "id")
        links = field(doc, "links")
        url = _link(links, "payer-action") or _link(links, "approve")
        if not isinstance(order_id, str) or not order_id or url is None:
            raise UpstreamError("payment processor paypal returned no order link", retryable=False)
        return Checkout(processor=self.name, id=order_id, url=url)

    async def _capture(self, order_id: str) -> None:
        """Take the money of an approved order. Capturing twice is harmless: the same
        PayPal-Request-Id replays the first answer, and later PayPal says ORDER_ALREADY_CAPTURED."""
        path = f"/v2/checkout/orders/{quote(order_id, safe='')}/capture"
        status, raw = await self._request(path, {}, request_id=f"tokenyard-capture-{order_id}")
        if status in (200, 201) or (status == 422 and _issue(raw) == "ORDER_ALREADY_CAPTURED"):
            return
        raise api_failure(status, raw, processor=self.name, secrets=self._secrets())

    async def _call(self, path: str, body: object) -> object:
        status, raw = await self._request(path, body)
        if status not in (200, 201):
            raise api_failure(status, raw, processor=self.name, secrets=self._secrets())
        try:
            return loads(raw)
        except JSONDecodeError:
            raise UpstreamError(
                "payment processor paypal answered no JSON", retryable=True
            ) from None

    async def _request(
        self, path: str, body: object, *, request_id: str | None = None
    ) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {await self._access_token()}"}
        if request_id is not None:
            headers["PayPal-Request-Id"] = request_id
        status, raw = await send(
            self._session, "POST", self._api + path, processor=self.name, headers=headers, json=body
        )
        if status == 401:
            self._token = None  # revoked or expired early: the next call fetches a new one
        return status, raw

    async def _access_token(self) -> str:
        now = self._clock()
        if self._token is not None and now < self._token[1]:
            return self._token[0]
        credentials = f"{self._config.client_id}:{self._config.client_secret}".encode()
        headers = {"Authorization": f"Basic {base64.b64encode(credentials).decode()}"}
        status, raw = await send(
            self._session,
            "POST",
            f"{self._api}/v1/oauth2/token",
            processor=self.name,
            headers=headers,
            data={"grant_type": "client_credentials"},
        )
        if status != 200:
            raise api_failure(status, raw, processor=self.name, secrets=self._secrets())
        try:
            doc = loads(raw)
        except JSONDecodeError:
            doc = None
        token, lifetime = field(doc, "access_token"), field(doc, "expires_in")
        if not isinstance(token, str) or not token:
            raise UpstreamError("payment processor paypal issued no access token", retryable=True)
        seconds = lifetime if isinstance(lifetime, int | float) else 0
        self._token = (token, now + max(0.0, float(seconds) - TOKEN_MARGIN_S))
        return token

    def _secrets(self) -> tuple[str, ...]:
        token = (self._token[0],) if self._token else ()
        return (self._config.client_secret, *token)

    # ------------------------------------------------------------------ webhooks

    async def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> PaymentEvent | None:
        found = lower_headers(headers)
        missing = [name for name in _SIGNATURE_HEADERS if not found.get(name)]
        if missing:
            raise WebhookRejected(f"paypal webhook: unsigned, no {missing[0]} header")
        if found["paypal-auth-algo"] != AUTH_ALGO:
            raise WebhookRejected(f"paypal webhook: unsupported PAYPAL-AUTH-ALGO, not {AUTH_ALGO}")
        transmission_time = found["paypal-transmission-time"]
        if abs(self._clock() - _epoch(transmission_time)) > TOLERANCE_S:
            raise WebhookRejected("paypal webhook: transmission time outside the 300 s tolerance")
        certificate = await self._certificate(found["paypal-cert-url"])
        message = signed_message(
            found["paypal-transmission-id"], transmission_time, self._config.webhook_id, body
        )
        _verify_signature(certificate, found["paypal-transmission-sig"], message)
        return await self._event(json_object(body, self.name))

    async def _event(self, event: object) -> PaymentEvent | None:
        event_id = text_field(event, "id", self.name)
        kind = text_field(event, "event_type", self.name)
        if kind == "CHECKOUT.ORDER.APPROVED" and field(event, "resource.intent") == "CAPTURE":
            await self._capture(text_field(event, "resource.id", self.name))
            return None
        if kind != "PAYMENT.CAPTURE.COMPLETED":
            log.debug("paypal webhook %s of type %s ignored", event_id, kind)
            return None
        if field(event, "resource.status") not in (None, "COMPLETED"):
            return None
        return paid_event(
            self.name,
            event_id,
            event,
            account="resource.custom_id",
            amount="resource.amount.value",
            currency="resource.amount.currency_code",
        )

    async def _certificate(self, url: str) -> x509.Certificate:
        if not self._allowed(url):
            raise WebhookRejected("paypal webhook: PAYPAL-CERT-URL is not on an allowed host")
        certificate = self._certs.get(url)
        if certificate is None:
            certificate = await self._download(url)
            if len(self._certs) >= CERT_CACHE_SIZE:
                del self._certs[next(iter(self._certs))]
            self._certs[url] = certificate
        now = self._clock()
        valid_from = certificate.not_valid_before_utc.timestamp()
        valid_until = certificate.not_valid_after_utc.timestamp()
        if not valid_from <= now <= valid_until:
            raise WebhookRejected("paypal webhook: signing certificate expired or not yet valid")
        return certificate

    def _allowed(self, url: str) -> bool:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return False
        if parts.username is not None or parts.password is not None or not parts.hostname:
            return False
        scheme = parts.scheme.lower()
        origin: Origin = (scheme, parts.hostname, port or {"https": 443, "http": 80}.get(scheme, 0))
        return origin in self._cert_origins

    async def _download(self, url: str) -> x509.Certificate:
        status, raw = await send(self._session, "GET", url, processor=self.name)
        if status >= 500 or status == 429:
            raise UpstreamError(f"paypal certificate host answered HTTP {status}", retryable=True)
        if status != 200:
            raise WebhookRejected(f"paypal webhook: PAYPAL-CERT-URL answered HTTP {status}")
        try:
            certificate = x509.load_pem_x509_certificates(raw)[0]
        except ValueError:
            raise WebhookRejected("paypal webhook: PAYPAL-CERT-URL holds no certificate") from None
        names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        common_name = str(names[0].value).lower() if names else ""
        if not common_name.endswith(CERT_SUBJECT_SUFFIX):
            raise WebhookRejected("paypal webhook: certificate is not issued to paypal.com")
        return certificate


def _link(links: object, rel: str) -> str | None:
    if not isinstance(links, list):
        return None
    for link in links:
        href = field(link, "href")
        if field(link, "rel") == rel and isinstance(href, str) and href:
            return href
    return None


def _issue(raw: bytes) -> str | None:
    try:
        details = field(loads(raw), "details")
    except JSONDecodeError:
        return None
    issue = field(details[0], "issue") if isinstance(details, list) and details else None
    return issue if isinstance(issue, str) else None


def _epoch(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise WebhookRejected("paypal webhook: malformed PAYPAL-TRANSMISSION-TIME") from None
    if moment.tzinfo is None:
        raise WebhookRejected("paypal webhook: PAYPAL-TRANSMISSION-TIME has no time zone")
    return moment.timestamp()


def _verify_signature(certificate: x509.Certificate, signature: str, message: str) -> None:
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise WebhookRejected("paypal webhook: signing certificate has no RSA key")
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, message.encode(), padding.PKCS1v15(), hashes.SHA256())
    except (binascii.Error, ValueError, InvalidSignature):
        raise WebhookRejected("paypal webhook: bad signature") from None

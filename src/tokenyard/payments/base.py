"""The port every payment processor implements, and the few things the adapters share.

A processor does two things: it opens a hosted checkout for an account (``create_checkout``)
and it turns a webhook request into a verified :class:`PaymentEvent` (``verify_webhook``).
Crediting the ledger is not done here: the caller records ``f"{processor}:{event_id}"`` as
the unique ledger reference, which is what makes a redelivered webhook harmless.

Errors: a webhook that is not authentic or not readable raises :class:`WebhookRejected`
(HTTP 400, the processor will retry or give up); a processor API that fails raises
:class:`~tokenyard.errors.UpstreamError` (502/504; retryable when trying again may work); an
amount the processor cannot charge raises :class:`~tokenyard.errors.InvalidRequest`.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

import aiohttp

from tokenyard.errors import InvalidRequest, UpstreamError, UpstreamRejected, UpstreamTimeout
from tokenyard.immutable import immutable
from tokenyard.wire.json import JSONDecodeError, JSONObject, loads

log = logging.getLogger(__name__)

Clock = Callable[[], float]
"""Seconds since the epoch, like :func:`time.time`; injected so tests control time."""

TIMEOUT_S = 30.0
"""Longest wait for one processor API call."""


@immutable
class Checkout:
    """Where the payer is sent to pay."""

    processor: str  # "stripe" | "paypal" | "coinbase"
    id: str  # the processor's session / order / charge id
    url: str


@immutable
class PaymentEvent:
    """A verified "money arrived" notification."""

    processor: str
    event_id: str  # unique per processor; the ledger reference is f"{processor}:{event_id}"
    account_id: str  # what we attached to the checkout when creating it
    amount: Decimal  # in ``currency``
    currency: str  # upper-case ISO 4217 code


class WebhookRejected(InvalidRequest):
    """A webhook that is not authentic (unsigned, bad signature, too old, certificate from a
    host not allowed) or cannot be read (malformed). The message says which, never a secret."""

    code = "webhook_rejected"


class Processor(Protocol):
    name: str

    async def create_checkout(self, *, account_id: str, amount: Decimal, currency: str) -> Checkout:
        """Open a hosted checkout for ``amount`` ``currency`` to be credited to ``account_id``."""
        ...

    async def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> PaymentEvent | None:
        """The payment this webhook reports, or None when it is authentic but reports no
        completed payment (acknowledge and ignore it). Raises :class:`WebhookRejected` when it
        is not authentic or not readable."""
        ...


# ---------------------------------------------------------------------------------- money


def checked_currency(currency: str) -> str:
    code = currency.strip().upper()
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        raise InvalidRequest(f"not an ISO 4217 currency code: {currency[:16]!r}", param="currency")
    return code


def minor_units(amount: Decimal, exponent: int, currency: str) -> int:
    """``amount`` in the currency's smallest unit (cents for USD); exact or InvalidRequest."""
    if not amount.is_finite() or amount <= 0:
        raise InvalidRequest("the amount must be a positive number", param="amount")
    scaled = amount.scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise InvalidRequest(
            f"{currency} amounts have at most {exponent} decimal places", param="amount"
        )
    return int(scaled)


def decimal_text(amount: Decimal, exponent: int, currency: str) -> str:
    """``amount`` written with exactly the currency's decimal places: ``"10.00"``, ``"1000"``."""
    minor = minor_units(amount, exponent, currency)
    return f"{Decimal(minor).scaleb(-exponent):.{exponent}f}"


def from_minor_units(minor: int, exponent: int) -> Decimal:
    return Decimal(minor).scaleb(-exponent)


# ---------------------------------------------------------------------------------- webhooks


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names folded to lower case (a plain dict is accepted as well as aiohttp's)."""
    return {name.lower(): value for name, value in headers.items()}


def same_text(expected: str, given: str) -> bool:
    """Constant-time comparison of two signatures."""
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


def json_object(body: bytes, processor: str) -> JSONObject:
    try:
        doc = loads(body)
    except JSONDecodeError:
        raise WebhookRejected(f"{processor} webhook: malformed JSON body") from None
    if not isinstance(doc, dict):
        raise WebhookRejected(f"{processor} webhook: malformed body, not a JSON object")
    return doc


def field(doc: object, path: str) -> object:
    """The value at dotted ``path`` in nested JSON objects, None when any step is missing."""
    for key in path.split("."):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def text_field(doc: object, path: str, processor: str) -> str:
    value = field(doc, path)
    if not isinstance(value, str) or not value:
        raise WebhookRejected(f"{processor} webhook: malformed event, no {path}")
    return value


def decimal_field(doc: object, path: str, processor: str) -> Decimal:
    text = text_field(doc, path, processor)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise WebhookRejected(
            f"{processor} webhook: malformed event, {path} is no number"
        ) from None
    if not value.is_finite() or value < 0:
        raise WebhookRejected(f"{processor} webhook: malformed event, {path} is no amount")
    return value


def currency_field(doc: object, path: str, processor: str) -> str:
    code = text_field(doc, path, processor).upper()
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        raise WebhookRejected(f"{processor} webhook: malformed event, {path} is no currency")
    return code


# ---------------------------------------------------------------------------------- HTTP


async def send(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    processor: str,
    headers: Mapping[str, str] | None = None,
    json: object = None,
    data: Mapping[str, str] | None = None,
) -> tuple[int, bytes]:
    """One processor API call: (status, body). Network failures become UpstreamError; the
    exception text never carries the request (URLs or headers may hold credentials)."""
    kwargs: dict[str, Any] = {"headers": headers}
    if json is not None:
        kwargs["json"] = json
    if data is not None:
        kwargs["data"] = data
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    try:
        async with session.request(method, url, timeout=timeout, **kwargs) as response:
            return response.status, await response.read()
    except TimeoutError:
        raise UpstreamTimeout(f"payment processor {processor} did not answer in time") from None
    except aiohttp.ClientError as exc:
        raise UpstreamError(
            f"payment processor {processor} is unreachable ({type(exc).__name__})",
            retryable=True,
        ) from None


def paid_event(
    processor: str,
    event_id: str,
    event: object,
    *,
    account: str,
    amount: str,
    currency: str,
) -> PaymentEvent | None:
    """The money a verified event reports, read at the given dotted paths; None (logged)
    when it names none of our accounts or no money, so the processor does not retry it."""
    account_id = field(event, account)
    if not isinstance(account_id, str) or not account_id:
        log.warning("%s webhook %s: no %s, ignored", processor, event_id, account)
        return None
    paid = decimal_field(event, amount, processor)
    if paid == 0:
        return None
    return PaymentEvent(
        processor=processor,
        event_id=event_id,
        account_id=account_id,
        amount=paid,
        currency=currency_field(event, currency, processor),
    )


def api_failure(status: int, body: bytes, *, processor: str, secrets: tuple[str, ...]) -> Exception:
    """The error for a processor API answer that is not a success."""
    message = _error_message(body)
    for secret in secrets:
        message = message.replace(secret, "***")
    message = message[:300]
    if status in (400, 422):
        return UpstreamRejected(
            f"payment processor {processor} refused the checkout: {message or f'HTTP {status}'}"
        )
    return UpstreamError(
        f"payment processor {processor} answered HTTP {status}",
        retryable=status == 429 or status >= 500,
    )


def _error_message(body: bytes) -> str:
    try:
        doc = loads(body)
    except JSONDecodeError:
        return ""
    for path in ("error.message", "message", "error_description", "error"):
        value = field(doc, path)
        if isinstance(value, str) and value:
            return value
    return ""

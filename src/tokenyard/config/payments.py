"""The ``payments:`` section: which payment processors take money, with what credentials.

Every processor is optional; a processor is enabled by being present. Secrets are kept out of
``repr`` (and so out of logs and tracebacks). ``api_base`` exists so that tests can point a
processor at a stand-in server.
"""

from __future__ import annotations

import re
from typing import Annotated, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, field_validator, model_validator

from tokenyard.config.base import Strict

PAYPAL_CERT_HOSTS = (
    "api.paypal.com",
    "api-m.paypal.com",
    "api.sandbox.paypal.com",
    "api-m.sandbox.paypal.com",
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_ORIGIN = re.compile(
    r"^(?:(?P<scheme>https?)://)?(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::(?P<port>\d{1,5}))?$"
)

Origin = tuple[str, str, int]
"""(scheme, lower-case host, port) of a URL."""


def cert_origin(entry: str) -> Origin:
    """Parse one ``cert_hosts`` entry, ``[scheme://]host[:port]``.

    Without a scheme the entry means ``https`` on that host, so plain host names allow only
    TLS; ``http://127.0.0.1:8080`` must be written out to allow plain HTTP (stand-ins in tests).
    """
    match = _ORIGIN.match(entry.strip())
    if match is None:
        raise ValueError(f"not a [scheme://]host[:port]: {entry!r}")
    scheme = match["scheme"] or "https"
    port = int(match["port"]) if match["port"] else _DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        raise ValueError(f"port out of range in {entry!r}")
    return scheme, match["host"].strip("[]").lower(), port


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http(s) URL")
    return value


def _api_base(value: str) -> str:
    return _http_url(value).rstrip("/")


HttpUrlText = Annotated[str, AfterValidator(_http_url)]
ApiBase = Annotated[str, AfterValidator(_api_base)]


class StripeConfig(Strict):
    secret_key: str = Field(min_length=1, repr=False)
    webhook_secret: str = Field(min_length=1, repr=False)
    api_base: ApiBase = "https://api.stripe.com"


class PayPalConfig(Strict):
    client_id: str = Field(min_length=1)
    client_secret: str = Field(min_length=1, repr=False)
    webhook_id: str = Field(min_length=1)
    api_base: ApiBase = "https://api-m.paypal.com"
    cert_hosts: list[str] = Field(default_factory=lambda: list(PAYPAL_CERT_HOSTS), min_length=1)
    """Where webhook signing certificates may be downloaded from: ``[scheme://]host[:port]``,
    ``https`` and port 443 when left out (see :func:`cert_origin`)."""

    @field_validator("cert_hosts")
    @classmethod
    def _check_cert_hosts(cls, value: list[str]) -> list[str]:
        for entry in value:
            cert_origin(entry)
        return value

    def cert_origins(self) -> frozenset[Origin]:
        return frozenset(cert_origin(entry) for entry in self.cert_hosts)


class CoinbaseConfig(Strict):
    api_key: str = Field(min_length=1, repr=False)
    webhook_secret: str = Field(min_length=1, repr=False)
    api_base: ApiBase = "https://api.commerce.coinbase.com"


class PaymentsConfig(Strict):
    success_url: HttpUrlText | None = None
    cancel_url: HttpUrlText | None = None
    stripe: StripeConfig | None = None
    paypal: PayPalConfig | None = None
    coinbase: CoinbaseConfig | None = None

    @model_validator(mode="after")
    def _success_url_when_enabled(self) -> Self:
        enabled = (self.stripe, self.paypal, self.coinbase)
        if any(p is not None for p in enabled) and self.success_url is None:
            raise ValueError("success_url is required when a payment processor is configured")
        return self

"""The ``payments:`` config section: optional processors, strict keys, hidden secrets, and the
explicit cert_hosts rule for where PayPal certificates may come from."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from tokenyard.config.payments import (
    PAYPAL_CERT_HOSTS,
    CoinbaseConfig,
    PaymentsConfig,
    PayPalConfig,
    StripeConfig,
    cert_origin,
)

EXAMPLE = """
success_url: https://example.com/paid
cancel_url: https://example.com/cancelled
stripe: {secret_key: sk_live_hidden1, webhook_secret: whsec_hidden2}
paypal:
  client_id: ppclient
  client_secret: pp-hidden3
  webhook_id: 8PT597110X687430LKGECATA
coinbase: {api_key: cc-hidden4, webhook_secret: cc-hidden5, api_base: http://127.0.0.1:9999/}
"""
SECRETS = ("sk_live_hidden1", "whsec_hidden2", "pp-hidden3", "cc-hidden4", "cc-hidden5")


def test_the_documented_section_parses_with_defaults() -> None:
    config = PaymentsConfig.model_validate(yaml.safe_load(EXAMPLE))
    assert config.stripe is not None and config.stripe.api_base == "https://api.stripe.com"
    assert config.paypal is not None and config.paypal.api_base == "https://api-m.paypal.com"
    assert config.paypal.cert_hosts == list(PAYPAL_CERT_HOSTS)
    assert config.coinbase is not None and config.coinbase.api_base == "http://127.0.0.1:9999"


def test_everything_is_optional() -> None:
    config = PaymentsConfig()
    assert (config.stripe, config.paypal, config.coinbase, config.success_url) == (None,) * 4


def test_secrets_stay_out_of_repr_and_str() -> None:
    config = PaymentsConfig.model_validate(yaml.safe_load(EXAMPLE))
    for text in (repr(config), str(config)):
        for secret in SECRETS:
            assert secret not in text
    assert "ppclient" in repr(config)


def test_unknown_keys_and_missing_secrets_are_errors() -> None:
    with pytest.raises(ValidationError):
        StripeConfig.model_validate({"secret_key": "sk", "webhook_secret": "w", "extra": 1})
    with pytest.raises(ValidationError):
        CoinbaseConfig.model_validate({"api_key": "k"})
    with pytest.raises(ValidationError):
        PayPalConfig.model_validate({"client_id": "c", "client_secret": "", "webhook_id": "w"})


def test_a_processor_needs_a_success_url() -> None:
    with pytest.raises(ValidationError, match="success_url is required"):
        PaymentsConfig.model_validate({"coinbase": {"api_key": "k", "webhook_secret": "s"}})


@pytest.mark.parametrize("url", ["example.com/paid", "ftp://example.com/x", "/relative"])
def test_urls_must_be_absolute_http(url: str) -> None:
    with pytest.raises(ValidationError, match="absolute http"):
        PaymentsConfig(success_url=url)
    with pytest.raises(ValidationError, match="absolute http"):
        StripeConfig(secret_key="k", webhook_secret="w", api_base=url)


@pytest.mark.parametrize(
    ("entry", "origin"),
    [
        ("api.paypal.com", ("https", "api.paypal.com", 443)),
        ("API.PayPal.com", ("https", "api.paypal.com", 443)),
        ("api.sandbox.paypal.com:8443", ("https", "api.sandbox.paypal.com", 8443)),
        ("http://127.0.0.1:8080", ("http", "127.0.0.1", 8080)),
        ("http://localhost", ("http", "localhost", 80)),
        ("https://[::1]:9000", ("https", "::1", 9000)),
    ],
)
def test_cert_host_entries_default_to_https(entry: str, origin: tuple[str, str, int]) -> None:
    assert cert_origin(entry) == origin


@pytest.mark.parametrize(
    "entry", ["ftp://api.paypal.com", "api.paypal.com/path", "user@api.paypal.com", "", "h:99999"]
)
def test_bad_cert_host_entries_are_config_errors(entry: str) -> None:
    with pytest.raises(ValidationError):
        PayPalConfig(client_id="c", client_secret="s", webhook_id="w", cert_hosts=[entry])

"""What a request costs (SPEC §6):

    cost = (uncached_input × input + cached_input × cached_input_price
            + output × output) / 1e6 × (1 + markup)

with prices per 1M tokens converted to the billing currency through ``billing.fx``.
Reasoning tokens are output tokens. Rounded once, at the end, by :func:`to_nano`.
"""

from __future__ import annotations

from decimal import Decimal

from tokenyard.billing.money import to_nano
from tokenyard.config.schema import BillingConfig, PriceConfig
from tokenyard.immutable import immutable
from tokenyard.wire.usage import Usage

_MILLION = Decimal(1_000_000)


@immutable
class Price:
    """Per-1M-token prices in the billing currency (after FX), before markup."""

    input: Decimal
    output: Decimal
    cached_input: Decimal

    @classmethod
    def from_config(cls, price: PriceConfig, billing: BillingConfig) -> Price:
        rate = Decimal(1)
        if price.currency and price.currency != billing.currency:
            rate = billing.fx[price.currency]
        cached = price.input if price.cached_input is None else price.cached_input
        return cls(input=price.input * rate, output=price.output * rate, cached_input=cached * rate)

    def provider_cost(self, usage: Usage) -> Decimal:
        """The provider's price of this usage, in billing-currency units, unrounded."""
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        uncached = usage.prompt_tokens - cached
        return (
            uncached * self.input
            + cached * self.cached_input
            + usage.completion_tokens * self.output
        ) / _MILLION


def cost_nano(price: Price, usage: Usage, markup: Decimal) -> int:
    """What the client is charged, in nano-units of the billing currency."""
    return to_nano(price.provider_cost(usage) * (1 + markup))

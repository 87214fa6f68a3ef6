"""What a request costs (SPEC §6):

    cost = (uncached_input × input + cached_input × cached_input_price
            + output × output) / 1e6 × (1 + markup)

with prices per 1M tokens converted to the billing currency through ``billing.fx``.
Reasoning tokens are output tokens. Rounded once, at the end, by :func:`round_half_up`.

Prices and markups are finite decimals, so the formula is an exact fraction. Each
:class:`Price` and :class:`Markup` is turned into integers once, where it is read (config
load, an account's row); a request's cost is then a few integer products and one
rounded division, exact at any size and with no decimal context involved.
"""

from __future__ import annotations

import math
from dataclasses import field
from decimal import MAX_PREC, Context, Decimal
from fractions import Fraction

from tokenyard.billing.money import round_half_up
from tokenyard.config.schema import BillingConfig, PriceConfig
from tokenyard.immutable import immutable
from tokenyard.wire.usage import Usage

_MILLION = Decimal(1_000_000)
_EXACT = Context(prec=MAX_PREC)
"""Multiplies decimals without rounding: a product has at most the digits of both factors."""


@immutable
class Markup:
    """``1 + markup`` as the exact fraction ``num / den``: made once where a markup is read
    (``billing.markup`` when the gateway is built, an account's own when its key is), so
    that no request converts a decimal."""

    num: int
    den: int

    @classmethod
    def of(cls, markup: Decimal) -> Markup:
        factor = 1 + Fraction(markup)
        return cls(factor.numerator, factor.denominator)


NO_MARKUP = Markup(1, 1)
"""What the provider's cost is priced with."""


@immutable
class Price:
    """Per-1M-token prices in the billing currency (after FX), before markup."""

    input: Decimal
    output: Decimal
    cached_input: Decimal
    # The same prices as integer nano-units per ``per`` tokens: price / 1e6 × 1e9 = rate / per.
    input_rate: int = field(init=False, repr=False, compare=False)
    cached_rate: int = field(init=False, repr=False, compare=False)
    output_rate: int = field(init=False, repr=False, compare=False)
    per: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:  # read-only to mypy: the rates are set once, here
        prices = (self.input, self.cached_input, self.output)
        nano_per_token = [Fraction(p) * 1000 for p in prices]
        per = math.lcm(*(f.denominator for f in nano_per_token))
        input_rate, cached_rate, output_rate = (int(f * per) for f in nano_per_token)
        object.__setattr__(self, "input_rate", input_rate)
        object.__setattr__(self, "cached_rate", cached_rate)
        object.__setattr__(self, "output_rate", output_rate)
        object.__setattr__(self, "per", per)

    @classmethod
    def from_config(cls, price: PriceConfig, billing: BillingConfig) -> Price:
        rate = Decimal(1)
        if price.currency and price.currency != billing.currency:
            rate = billing.fx[price.currency]
        cached = price.input if price.cached_input is None else price.cached_input
        return cls(
            input=_EXACT.multiply(price.input, rate),
            output=_EXACT.multiply(price.output, rate),
            cached_input=_EXACT.multiply(cached, rate),
        )

    def nano(self, uncached: int, cached: int, output: int, markup: Markup) -> int:
        """What these tokens cost with ``markup`` (:data:`NO_MARKUP`: the provider's cost),
        in nano-units of the billing currency: the SPEC formula, exactly, rounded once."""
        scaled = uncached * self.input_rate + cached * self.cached_rate + output * self.output_rate
        return round_half_up(scaled * markup.num, self.per * markup.den)

    def provider_cost(self, usage: Usage) -> Decimal:
        """The provider's price of this usage, in billing-currency units, unrounded: what
        routing ranks deployments by (billing uses :func:`cost_nano`)."""
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        uncached = usage.prompt_tokens - cached
        return (
            uncached * self.input
            + cached * self.cached_input
            + usage.completion_tokens * self.output
        ) / _MILLION


def cost_nano(price: Price, usage: Usage, markup: Markup) -> int:
    """What ``usage`` costs at ``price`` with ``markup``, in nano-units (:meth:`Price.nano`)."""
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    return price.nano(usage.prompt_tokens - cached, cached, usage.completion_tokens, markup)

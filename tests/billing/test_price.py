"""Cost arithmetic, exactly as SPEC §6 writes it."""

from decimal import Decimal

from tokenyard.billing.price import Price, cost_nano
from tokenyard.config.schema import BillingConfig, PriceConfig
from tokenyard.wire.usage import Usage

USD = BillingConfig(currency="USD", markup=Decimal("0.10"), fx={"CNY": Decimal("0.14")})


def test_spec_formula_with_cached_input_and_markup() -> None:
    price = Price.from_config(
        PriceConfig(input=Decimal("0.27"), output=Decimal("1.10"), cached_input=Decimal("0.07")),
        USD,
    )
    usage = Usage(prompt_tokens=1200, completion_tokens=18, cached_tokens=1024)
    # (176 × 0.27 + 1024 × 0.07 + 18 × 1.10) / 1e6 × 1.10
    # = (47.52 + 71.68 + 19.8) / 1e6 × 1.1 = 0.000139 × 1.1 = 0.0001529
    assert cost_nano(price, usage, USD.markup) == 152_900


def test_cached_tokens_cost_the_input_price_when_no_cached_price_is_set() -> None:
    price = Price.from_config(PriceConfig(input=Decimal(2), output=Decimal(8)), USD)
    cached = Usage(prompt_tokens=1000, completion_tokens=0, cached_tokens=600)
    plain = Usage(prompt_tokens=1000, completion_tokens=0)
    assert cost_nano(price, cached, Decimal(0)) == cost_nano(price, plain, Decimal(0)) == 2_000_000


def test_foreign_prices_are_converted_with_fx() -> None:
    price = Price.from_config(
        PriceConfig(input=Decimal("2.0"), output=Decimal("8.0"), currency="CNY"), USD
    )
    assert price.input == Decimal("0.280")
    assert price.output == Decimal("1.120")
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=500_000)
    # (0.28 + 0.56) × 1.1 = 0.924 USD
    assert cost_nano(price, usage, USD.markup) == 924_000_000


def test_reasoning_tokens_are_output_tokens() -> None:
    price = Price.from_config(PriceConfig(input=Decimal(0), output=Decimal(10)), USD)
    with_reasoning = Usage(prompt_tokens=0, completion_tokens=100, reasoning_tokens=90)
    assert cost_nano(price, with_reasoning, Decimal(0)) == 1_000_000


def test_one_rounding_at_the_end() -> None:
    price = Price.from_config(PriceConfig(input=Decimal("0.0000015"), output=Decimal(0)), USD)
    # 1 token × 0.0000015 / 1e6 = 1.5e-12 USD → 0.0015 nano: rounds to 0; 400 tokens → 0.6 → 1
    assert cost_nano(price, Usage(prompt_tokens=1), Decimal(0)) == 0
    assert cost_nano(price, Usage(prompt_tokens=400), Decimal(0)) == 1


def test_cached_tokens_cannot_exceed_the_prompt() -> None:
    price = Price.from_config(
        PriceConfig(input=Decimal(1), output=Decimal(0), cached_input=Decimal(0)), USD
    )
    assert cost_nano(price, Usage(prompt_tokens=10, cached_tokens=50), Decimal(0)) == 0

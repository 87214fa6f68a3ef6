"""Cost arithmetic, exactly as SPEC §6 writes it."""

from decimal import ROUND_HALF_UP, Decimal, localcontext

from hypothesis import example, given
from hypothesis import strategies as st

from tokenyard.billing.price import NO_MARKUP, Markup, Price, cost_nano
from tokenyard.billing.wallet import Wallet
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
    assert cost_nano(price, usage, Markup.of(USD.markup)) == 152_900


def test_cached_tokens_cost_the_input_price_when_no_cached_price_is_set() -> None:
    price = Price.from_config(PriceConfig(input=Decimal(2), output=Decimal(8)), USD)
    cached = Usage(prompt_tokens=1000, completion_tokens=0, cached_tokens=600)
    plain = Usage(prompt_tokens=1000, completion_tokens=0)
    assert cost_nano(price, cached, NO_MARKUP) == cost_nano(price, plain, NO_MARKUP) == 2_000_000


def test_foreign_prices_are_converted_with_fx() -> None:
    price = Price.from_config(
        PriceConfig(input=Decimal("2.0"), output=Decimal("8.0"), currency="CNY"), USD
    )
    assert price.input == Decimal("0.280")
    assert price.output == Decimal("1.120")
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=500_000)
    # (0.28 + 0.56) × 1.1 = 0.924 USD
    assert cost_nano(price, usage, Markup.of(USD.markup)) == 924_000_000


def test_reasoning_tokens_are_output_tokens() -> None:
    price = Price.from_config(PriceConfig(input=Decimal(0), output=Decimal(10)), USD)
    with_reasoning = Usage(prompt_tokens=0, completion_tokens=100, reasoning_tokens=90)
    assert cost_nano(price, with_reasoning, NO_MARKUP) == 1_000_000


def test_one_rounding_at_the_end() -> None:
    price = Price.from_config(PriceConfig(input=Decimal("0.0000015"), output=Decimal(0)), USD)
    # 1 token × 0.0000015 / 1e6 = 1.5e-12 USD → 0.0015 nano: rounds to 0; 400 tokens → 0.6 → 1
    assert cost_nano(price, Usage(prompt_tokens=1), NO_MARKUP) == 0
    assert cost_nano(price, Usage(prompt_tokens=400), NO_MARKUP) == 1


def test_cached_tokens_cannot_exceed_the_prompt() -> None:
    price = Price.from_config(
        PriceConfig(input=Decimal(1), output=Decimal(0), cached_input=Decimal(0)), USD
    )
    assert cost_nano(price, Usage(prompt_tokens=10, cached_tokens=50), NO_MARKUP) == 0


def test_an_exact_half_nano_rounds_up() -> None:
    price = Price.from_config(PriceConfig(input=Decimal("0.0005"), output=Decimal(0)), USD)
    assert cost_nano(price, Usage(prompt_tokens=1), NO_MARKUP) == 1  # 0.5 nano
    assert cost_nano(price, Usage(prompt_tokens=3), NO_MARKUP) == 2  # 1.5 nano


# -- the integer arithmetic against the SPEC formula in decimals wide enough to be exact ------

AMOUNTS = st.decimals(min_value=0, max_value=1000, places=9)
TOKENS = st.integers(min_value=0, max_value=10**9)


@st.composite
def price_configs(draw: st.DrawFn) -> PriceConfig:
    cached = draw(st.none() | AMOUNTS)
    currency = draw(st.sampled_from([None, "USD", "CNY"]))
    return PriceConfig(
        input=draw(AMOUNTS), output=draw(AMOUNTS), cached_input=cached, currency=currency
    )


def spec_nano(config: PriceConfig, billing: BillingConfig, usage: Usage, markup: Decimal) -> int:
    """SPEC §6 as written, at 200 digits (no intermediate is rounded), then to the nano."""
    with localcontext(prec=200):
        rate = billing.fx["CNY"] if config.currency == "CNY" else Decimal(1)
        cached_price = config.input if config.cached_input is None else config.cached_input
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        cost = (
            (
                (usage.prompt_tokens - cached) * config.input * rate
                + cached * cached_price * rate
                + usage.completion_tokens * config.output * rate
            )
            / Decimal(10**6)
            * (1 + markup)
        )
        return int((cost * 10**9).to_integral_value(rounding=ROUND_HALF_UP))


@given(
    configs=st.lists(price_configs(), min_size=1, max_size=3),
    fx=st.decimals(min_value=Decimal("0.000000001"), max_value=100, places=9),
    markup=st.decimals(min_value=0, max_value=100, places=9),
    prompt=TOKENS,
    cached=TOKENS,  # as often above the prompt as not: it is capped at the prompt
    output=TOKENS,
)
@example(  # an exact half nano: 1 token at 0.0005 per 1M
    configs=[PriceConfig(input=Decimal("0.0005"))],
    fx=Decimal(1),
    markup=Decimal(0),
    prompt=1,
    cached=0,
    output=0,
)
def test_integer_costs_are_the_spec_formula_rounded_once(
    configs: list[PriceConfig], fx: Decimal, markup: Decimal, prompt: int, cached: int, output: int
) -> None:
    billing = BillingConfig(currency="USD", markup=markup, fx={"CNY": fx})
    prices = [Price.from_config(c, billing) for c in configs]
    usage = Usage(prompt_tokens=prompt, completion_tokens=output, cached_tokens=cached)
    for config, price in zip(configs, prices, strict=True):
        assert cost_nano(price, usage, Markup.of(markup)) == spec_nano(
            config, billing, usage, markup
        )
        assert cost_nano(price, usage, NO_MARKUP) == spec_nano(config, billing, usage, Decimal(0))
    worst = Wallet.worst_case(prices, prompt, output, Markup.of(markup))
    held = Usage(prompt_tokens=prompt, completion_tokens=output)
    assert worst == max(spec_nano(c, billing, held, markup) for c in configs)

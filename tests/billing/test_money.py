from decimal import Decimal

import pytest

from tokenyard.billing.money import format_nano, parse_amount, to_nano


@pytest.mark.parametrize(
    ("nano", "text"),
    [
        (12_500_000_000, "12.500000"),
        (0, "0.000000"),
        (2_700, "0.0000027"),
        (1, "0.000000001"),
        (-1_000_000, "-0.001000"),
        (123_456_789_012, "123.456789012"),
    ],
)
def test_format_nano_is_exact_with_at_least_six_decimals(nano: int, text: str) -> None:
    assert format_nano(nano) == text
    assert parse_amount(text) == nano


def test_parse_amount_rejects_what_is_not_an_exact_amount() -> None:
    for bad in ["", "abc", "NaN", "Infinity", "0.0000000001"]:
        with pytest.raises(ValueError):
            parse_amount(bad)


def test_rounding_is_half_up_to_the_nano() -> None:
    assert to_nano(Decimal("0.0000000005")) == 1
    assert to_nano(Decimal("0.00000000049")) == 0
    assert to_nano(Decimal("0.0000000015")) == 2
    assert to_nano(Decimal(3)) == 3_000_000_000

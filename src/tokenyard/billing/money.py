"""Nano-units of the billing currency, the one rounding rule, and their decimal strings."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from tokenyard.store.ledger import MAX_NANO

NANO = 10**9
_NANO_D = Decimal(NANO)


def round_half_up(num: int, den: int) -> int:
    """The one rounding rule of tokenyard, on an exact fraction: ``num / den`` (``den > 0``)
    to the nearest integer, halves away from zero. Costs are exact fractions of nano-units
    (billing/price.py), so integer arithmetic rounds them exactly and without a decimal
    context; no cost is negative, but the rule holds for negative amounts too."""
    if num < 0:
        return -round_half_up(-num, den)
    return (2 * num + den) // (2 * den)


def to_nano(amount: Decimal) -> int:
    """The same rule for a decimal amount (a parsed credit or payment): to the nearest
    nano-unit, halves away from zero."""
    return int((amount * _NANO_D).to_integral_value(rounding=ROUND_HALF_UP))


def parse_amount(text: str) -> int:
    """A decimal string from the API (``"12.5"``) in nano-units; ValueError if it is not one
    or has more precision than a nano-unit."""
    try:
        value = Decimal(text)
    except (InvalidOperation, TypeError):
        raise ValueError(f"not a decimal amount: {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"not a decimal amount: {text!r}")
    nano = value * _NANO_D
    if nano != nano.to_integral_value():
        raise ValueError(f"more than 9 decimal places: {text!r}")
    if abs(nano) > MAX_NANO:
        raise ValueError(f"more than the ledger can hold: {text!r}")
    return int(nano)


def format_nano(nano: int) -> str:
    """Nano-units as a decimal string with at least 6 and at most 9 decimals, exactly:
    ``12500000000 → "12.500000"``, ``2700 → "0.0000027"``."""
    sign = "-" if nano < 0 else ""
    whole, frac = divmod(abs(nano), NANO)
    digits = f"{frac:09d}".rstrip("0").ljust(6, "0")
    return f"{sign}{whole}.{digits}"

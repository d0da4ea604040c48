"""Money: integer minor units on the wire and in the database, Decimal in code, never float."""

from __future__ import annotations

from decimal import Decimal, localcontext

# ISO 4217 minor-unit exponents that differ from the usual 2.
_MINOR_DIGITS = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3}


def minor_digits(currency: str) -> int:
    """How many decimal places the currency has."""
    return _MINOR_DIGITS.get(currency, 2)


def to_minor(amount: Decimal, currency: str) -> int:
    """Decimal major units -> integer minor units; refuses amounts finer than the currency allows."""
    if not amount.is_finite():
        raise ValueError(f"{amount} is not a finite amount")
    with localcontext() as ctx:
        ctx.prec = 200  # exact: the default 28 digits would round long inputs silently
        scaled = amount.scaleb(minor_digits(currency))
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{amount} has more than {minor_digits(currency)} decimal places for {currency}")
        return int(scaled)


def from_minor(amount_minor: int, currency: str) -> Decimal:
    """Integer minor units -> Decimal major units with the currency's exponent."""
    return Decimal(amount_minor).scaleb(-minor_digits(currency))


def format_amount(amount_minor: int, currency: str) -> str:
    """e.g. 123456 CNY -> '1,234.56'."""
    return f"{from_minor(amount_minor, currency):,.{minor_digits(currency)}f}"

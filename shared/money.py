"""Money: integer minor units on the wire and in the database, Decimal in code, never float."""

from __future__ import annotations

from decimal import Decimal, localcontext

from iso4217 import Currency as _Iso4217

# ISO 4217 (the maintained `iso4217` package, SIX's list): code -> minor-unit exponent. Codes without a
# minor unit (precious metals, funds, the test code XTS) are not money the platform collects.
_MINOR_DIGITS: dict[str, int] = {c.code: c.exponent for c in _Iso4217 if c.exponent is not None}


def is_currency(code: str) -> bool:
    """Whether ``code`` is an ISO 4217 currency with a minor unit."""
    return code in _MINOR_DIGITS


def minor_digits(currency: str) -> int:
    """How many decimal places the currency has (XOF 0, CNY 2, BHD 3, CLF 4); ValueError if not ISO 4217."""
    try:
        return _MINOR_DIGITS[currency]
    except KeyError:
        raise ValueError(f"{currency!r} is not an ISO 4217 currency") from None


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

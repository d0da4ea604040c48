"""Unit tests for shared/money.py: integer minor units, Decimal in code."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.money import format_amount, from_minor, is_currency, minor_digits, to_minor

PROPS = settings(max_examples=200, deadline=None, database=None)
CURRENCIES = ["CNY", "USD", "EUR", "JPY", "KRW", "KWD", "BHD"]


@pytest.mark.parametrize(("currency", "digits"), [("CNY", 2), ("USD", 2), ("JPY", 0), ("KRW", 0), ("KWD", 3)])
def test_minor_digits(currency: str, digits: int) -> None:
    assert minor_digits(currency) == digits


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (123456, "CNY", "1,234.56"), (5, "CNY", "0.05"), (0, "CNY", "0.00"), (100, "CNY", "1.00"),
        (123456789, "CNY", "1,234,567.89"), (-123456, "CNY", "-1,234.56"),
        (123456, "JPY", "123,456"), (7, "JPY", "7"), (0, "JPY", "0"),
        (1234567, "KWD", "1,234.567"), (5, "KWD", "0.005"), (1000, "KWD", "1.000"),
    ],
)
def test_format_amount(minor: int, currency: str, text: str) -> None:
    assert format_amount(minor, currency) == text


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("1234.56", "CNY", 123456), ("0.01", "CNY", 1), ("1.5", "CNY", 150), ("1.500", "CNY", 150),
        ("1E+2", "CNY", 10000), ("0", "CNY", 0), ("123456", "JPY", 123456), ("12.0", "JPY", 12),
        ("1.234", "KWD", 1234), ("-2.50", "CNY", -250),
    ],
)
def test_to_minor(amount: str, currency: str, minor: int) -> None:
    result = to_minor(Decimal(amount), currency)
    assert result == minor
    assert type(result) is int


@pytest.mark.parametrize(
    ("amount", "currency"),
    [("1.005", "CNY"), ("0.001", "USD"), ("1.5", "JPY"), ("0.1", "KRW"), ("1.0005", "KWD")],
)
def test_to_minor_rejects_too_many_decimals(amount: str, currency: str) -> None:
    with pytest.raises(ValueError, match="decimal places"):
        to_minor(Decimal(amount), currency)


def test_from_minor_has_the_currency_exponent() -> None:
    assert from_minor(123456, "CNY") == Decimal("1234.56")
    assert from_minor(123456, "CNY").as_tuple().exponent == -2
    assert from_minor(123456, "JPY").as_tuple().exponent == 0
    assert from_minor(1, "KWD") == Decimal("0.001")


@st.composite
def amounts(draw: st.DrawFn) -> tuple[Decimal, str]:
    currency = draw(st.sampled_from(CURRENCIES))
    places = minor_digits(currency)
    amount = draw(st.decimals(min_value=Decimal("-1e15"), max_value=Decimal("1e15"), places=places,
                              allow_nan=False, allow_infinity=False))
    return amount, currency


@PROPS
@given(case=amounts())
def test_to_minor_from_minor_round_trip(case: tuple[Decimal, str]) -> None:
    amount, currency = case
    minor = to_minor(amount, currency)
    assert isinstance(minor, int)
    assert from_minor(minor, currency) == amount
    assert to_minor(from_minor(minor, currency), currency) == minor


@PROPS
@given(minor=st.integers(-(10**17), 10**17), currency=st.sampled_from(CURRENCIES))
def test_from_minor_to_minor_round_trip(minor: int, currency: str) -> None:
    assert to_minor(from_minor(minor, currency), currency) == minor
    text = format_amount(minor, currency)
    assert Decimal(text.replace(",", "")) == from_minor(minor, currency)


@PROPS
@given(case=amounts(), extra=st.integers(1, 9))
def test_to_minor_rejects_one_more_decimal(case: tuple[Decimal, str], extra: int) -> None:
    amount, currency = case
    finer = amount + Decimal(extra).scaleb(-(minor_digits(currency) + 1))
    with pytest.raises(ValueError):
        to_minor(finer, currency)


def test_to_minor_rejects_excess_decimals_beyond_context_precision() -> None:
    amount = Decimal("100.00000000000000000000000001")  # 29 significant digits, 26 decimals
    with pytest.raises(ValueError):
        to_minor(amount, "CNY")  # currently returns 10000, i.e. 100.00 CNY


@pytest.mark.parametrize(("currency", "digits"), [("XOF", 0), ("JPY", 0), ("CNY", 2), ("IQD", 3), ("BHD", 3),
                                                  ("CLF", 4)])
def test_exponents_follow_iso_4217(currency: str, digits: int) -> None:
    assert minor_digits(currency) == digits
    assert to_minor(Decimal(1).scaleb(-digits), currency) == 1


@pytest.mark.parametrize("code", ["XYZ", "XAU", "XTS", "cny", "CN"])
def test_codes_that_are_not_iso_4217_money_are_refused(code: str) -> None:
    assert not is_currency(code)
    with pytest.raises(ValueError, match="ISO 4217"):
        minor_digits(code)


def test_contracts_refuse_a_currency_that_is_not_iso_4217() -> None:
    from datetime import UTC, datetime

    from pydantic import ValidationError

    from shared.contracts.events import PaymentReceivedV1

    good = {"tenant": "t", "account_id": "A", "customer_id": "C", "payment_id": "P", "amount_minor": 1,
            "currency": "XOF", "paid_at": datetime.now(UTC)}
    assert PaymentReceivedV1.model_validate(good).currency == "XOF"
    with pytest.raises(ValidationError, match="ISO 4217"):
        PaymentReceivedV1.model_validate(good | {"currency": "XYZ"})

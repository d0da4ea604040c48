"""Unit tests for what a payment does to an account and which fact is newer
(services/segmentation/domain/accounts.py); money in integer minor units."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.segmentation.domain.accounts import AccountStatus, Balances, after_payment, is_newer

PROPS = settings(max_examples=300, deadline=None, database=None)
OVERDUE, CURED = AccountStatus.OVERDUE, AccountStatus.CURED


@pytest.mark.parametrize(("overdue", "outstanding", "amount", "expected"), [
    (250000, 1000000, 100000, Balances(150000, 900000, OVERDUE)),  # part payment: still overdue
    (250000, 1000000, 249999, Balances(1, 750001, OVERDUE)),
    (250000, 1000000, 250000, Balances(0, 750000, CURED)),         # exactly the overdue amount cures
    (250000, 1000000, 400000, Balances(0, 600000, CURED)),         # more than overdue: cured, outstanding down
    (250000, 1000000, 1500000, Balances(0, 0, CURED)),             # more than everything: never below zero
    (250000, 250000, 250000, Balances(0, 0, CURED)),
])
def test_after_payment_table(overdue: int, outstanding: int, amount: int, expected: Balances) -> None:
    assert after_payment(overdue_minor=overdue, outstanding_minor=outstanding, status=OVERDUE,
                         amount_minor=amount) == expected


def test_a_cured_account_stays_cured_after_another_payment() -> None:
    assert after_payment(overdue_minor=0, outstanding_minor=5000, status=CURED, amount_minor=2000) == \
        Balances(0, 3000, CURED)


minor = st.integers(min_value=0, max_value=10**13)


@st.composite
def accounts(draw: st.DrawFn) -> tuple[int, int]:
    """(overdue, outstanding) as the overdue contract allows: overdue never exceeds outstanding."""
    outstanding = draw(minor)
    return draw(st.integers(min_value=0, max_value=outstanding)), outstanding


@PROPS
@given(accounts(), st.integers(min_value=1, max_value=10**13))
def test_after_payment_never_negative_and_cures_exactly_at_zero(account: tuple[int, int], amount: int) -> None:
    overdue, outstanding = account
    after = after_payment(overdue_minor=overdue, outstanding_minor=outstanding, status=OVERDUE,
                          amount_minor=amount)
    assert after.overdue_minor >= 0 and after.outstanding_minor >= 0
    assert after.overdue_minor == max(overdue - amount, 0)
    assert after.outstanding_minor == max(outstanding - amount, 0)
    assert after.overdue_minor <= after.outstanding_minor
    assert (after.status is CURED) is (after.overdue_minor == 0)
    assert (after.status is CURED) is (amount >= overdue)


@PROPS
@given(accounts(), st.lists(st.integers(min_value=1, max_value=10**9), min_size=1, max_size=10))
def test_payments_in_pieces_end_where_one_payment_would(account: tuple[int, int], amounts: list[int]) -> None:
    overdue, outstanding = account
    status = OVERDUE
    for amount in amounts:
        before = status
        after = after_payment(overdue_minor=overdue, outstanding_minor=outstanding, status=status,
                              amount_minor=amount)
        overdue, outstanding, status = after.overdue_minor, after.outstanding_minor, after.status
        assert overdue >= 0 and outstanding >= 0
        assert not (before is CURED and status is OVERDUE)  # a payment never makes an account overdue again
    once = after_payment(overdue_minor=account[0], outstanding_minor=account[1], status=OVERDUE,
                         amount_minor=sum(amounts))
    assert (overdue, outstanding, status) == (once.overdue_minor, once.outstanding_minor, once.status)


T0 = datetime(2026, 5, 12, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(("incoming", "stored", "newer"), [
    (T0, None, True),                                  # nothing stored yet
    (T0 + timedelta(microseconds=1), T0, True),
    (T0, T0, True),                                    # the same instant: applied again (idempotent facts)
    (T0 - timedelta(microseconds=1), T0, False),       # older: never overwrites
    (T0.astimezone(timezone(timedelta(hours=8))), T0, True),  # same instant in another offset
    (datetime(2026, 5, 12, 15, 59, tzinfo=timezone(timedelta(hours=8))), T0, False),
])
def test_is_newer_table(incoming: datetime, stored: datetime | None, newer: bool) -> None:
    assert is_newer(incoming, stored) is newer


aware = st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5))]))


@PROPS
@given(aware, aware)
def test_is_newer_never_lets_an_older_fact_win(a: datetime, b: datetime) -> None:
    assert is_newer(a, None)
    assert is_newer(a, b) is (a >= b)
    if a != b:
        assert is_newer(a, b) != is_newer(b, a)  # of two different instants exactly one is newer

"""Unit tests for what a payment does to an account, which overdue snapshot is newer and the balances
derived from the newest snapshot and the payments kept (services/segmentation/domain/accounts.py);
money in integer minor units."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.segmentation.domain.accounts import (
    AccountStatus,
    Balances,
    PaymentFact,
    Snapshot,
    after_payment,
    balances,
    counts_after,
    in_other_currencies,
    supersedes,
)

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
DUE = date(2026, 5, 1)


def snap(at: datetime, *, due: date = DUE, dpd: int = 11, overdue: int = 1_000, outstanding: int = 9_000) -> Snapshot:
    return Snapshot(at, due, dpd, overdue, outstanding)


@pytest.mark.parametrize(("incoming", "stored", "wins"), [
    (snap(T0), None, True),                                         # nothing stored yet
    (snap(T0 + timedelta(microseconds=1)), snap(T0), True),
    (snap(T0 - timedelta(microseconds=1)), snap(T0, dpd=1), False),  # older: never overwrites, whatever it says
    (snap(T0), snap(T0), False),                                    # a duplicate: nothing stored or announced again
    (snap(T0.astimezone(timezone(timedelta(hours=8)))), snap(T0), False),  # the same instant in another offset
    (snap(datetime(2026, 5, 12, 16, 0, 1, tzinfo=timezone(timedelta(hours=8)))), snap(T0), True),
    # equal times: the later cycle, then the higher DPD, then the larger amounts win, in either order
    (snap(T0, due=date(2026, 6, 1), dpd=0), snap(T0, dpd=40), True),
    (snap(T0, dpd=12), snap(T0, dpd=11, overdue=9_000), True),
    (snap(T0, overdue=1_001), snap(T0, outstanding=99_000), True),
    (snap(T0, outstanding=9_001), snap(T0), True),
])
def test_supersedes_table(incoming: Snapshot, stored: Snapshot | None, wins: bool) -> None:
    assert supersedes(incoming, stored) is wins


aware = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1),
                     timezones=st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5))]))
snapshots = st.builds(Snapshot, aware, st.dates(date(2026, 1, 1), date(2026, 1, 3)), st.integers(0, 2),
                      st.integers(1, 3), st.integers(3, 5))


@PROPS
@given(snapshots, snapshots)
def test_of_two_snapshots_exactly_one_wins_unless_they_are_equal(a: Snapshot, b: Snapshot) -> None:
    assert supersedes(a, None)
    assert not supersedes(a, a)
    if a.key() != b.key():
        assert supersedes(a, b) != supersedes(b, a)
    if a.as_of != b.as_of:
        assert supersedes(a, b) is (a.as_of > b.as_of)  # the event time decides first


@PROPS
@given(st.lists(snapshots, min_size=1, max_size=6), st.randoms(use_true_random=False))
def test_the_newest_snapshot_wins_whatever_the_arrival_order(arrivals: list[Snapshot], rnd: random.Random) -> None:
    def kept(order: list[Snapshot]) -> Snapshot:
        held: Snapshot | None = None
        for s in order:
            if supersedes(s, held):
                held = s
        assert held is not None
        return held

    shuffled = list(arrivals)
    rnd.shuffle(shuffled)
    assert kept(shuffled).key() == kept(sorted(arrivals, key=Snapshot.key)).key() == max(s.key() for s in arrivals)


def pay(amount: int, at: datetime, currency: str = "CNY") -> PaymentFact:
    return PaymentFact(amount, currency, at)


@pytest.mark.parametrize(("payments", "expected"), [
    ([], Balances(1_000, 9_000, OVERDUE)),
    ([pay(400, T0 + timedelta(seconds=1))], Balances(600, 8_600, OVERDUE)),
    ([pay(400, T0 - timedelta(days=1))], Balances(1_000, 9_000, OVERDUE)),    # before the snapshot: already in it
    ([pay(400, T0)], Balances(1_000, 9_000, OVERDUE)),                        # at its very instant: already in it
    ([pay(400, T0 + timedelta(hours=1)), pay(600, T0 + timedelta(hours=2))], Balances(0, 8_000, CURED)),
    ([pay(5_000, T0 + timedelta(hours=1), "USD")], Balances(1_000, 9_000, OVERDUE)),  # another currency: not counted
    ([pay(20_000, T0 + timedelta(hours=1))], Balances(0, 0, CURED)),          # never below zero
    ([pay(999, T0 + timedelta(hours=1)), pay(1, T0 - timedelta(hours=1))], Balances(1, 8_001, OVERDUE)),
])
def test_balances_table(payments: list[PaymentFact], expected: Balances) -> None:
    assert balances(reported_overdue_minor=1_000, reported_outstanding_minor=9_000, currency="CNY", as_of=T0,
                    payments=payments) == expected


def test_payments_in_another_currency_are_set_apart_and_count_after_nothing() -> None:
    usd, cny = pay(5, T0 + timedelta(1), "USD"), pay(5, T0 + timedelta(1))
    assert in_other_currencies([usd, cny], currency="CNY") == [usd]
    assert not counts_after(usd, currency="CNY", as_of=T0) and counts_after(cny, currency="CNY", as_of=T0)


payment_facts = st.builds(PaymentFact, st.integers(1, 10**9), st.sampled_from(["CNY", "CNY", "USD"]), aware)


@PROPS
@given(accounts().filter(lambda a: a[0] > 0), aware, st.lists(payment_facts, max_size=8),
       st.randoms(use_true_random=False))
def test_balances_are_the_payments_after_the_snapshot_applied_one_by_one_in_any_order(
        account: tuple[int, int], as_of: datetime, payments: list[PaymentFact], rnd: random.Random) -> None:
    overdue, outstanding = account
    derived = balances(reported_overdue_minor=overdue, reported_outstanding_minor=outstanding, currency="CNY",
                       as_of=as_of, payments=payments)
    shuffled = list(payments)
    rnd.shuffle(shuffled)
    assert balances(reported_overdue_minor=overdue, reported_outstanding_minor=outstanding, currency="CNY",
                    as_of=as_of, payments=shuffled) == derived
    one_by_one = Balances(overdue, outstanding, OVERDUE)
    for p in shuffled:
        if p.currency == "CNY" and p.paid_at > as_of:
            one_by_one = after_payment(overdue_minor=one_by_one.overdue_minor, amount_minor=p.amount_minor,
                                       outstanding_minor=one_by_one.outstanding_minor, status=one_by_one.status)
    assert derived == one_by_one
    assert 0 <= derived.overdue_minor <= min(overdue, derived.outstanding_minor)
    assert (derived.status is CURED) is (derived.overdue_minor == 0)
    # payments booked before (or at) the snapshot, or in another currency, never change it
    assert derived == balances(reported_overdue_minor=overdue, reported_outstanding_minor=outstanding,
                               currency="CNY", as_of=as_of,
                               payments=[p for p in payments if counts_after(p, currency="CNY", as_of=as_of)])

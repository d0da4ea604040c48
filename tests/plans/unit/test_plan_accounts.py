"""What plans derives from an account's facts: which overdue snapshot wins, what is owed now, and whether a
plan covers it (services/plans/domain/accounts.py)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from itertools import permutations

import pytest

from services.plans.domain.accounts import (
    PaymentFact,
    PlanDoesNotCover,
    SnapshotTime,
    is_newer_snapshot,
    overdue_now,
    require_cover,
)

AS_OF = datetime(2025, 3, 19, 15, 0, tzinfo=UTC)
DUE = date(2025, 3, 10)


def at(hours: float = 0, *, due: date = DUE, dpd: int = 9, overdue: int = 250_000) -> SnapshotTime:
    return SnapshotTime(AS_OF + timedelta(hours=hours), due, dpd, overdue)


def test_a_newer_snapshot_replaces_the_stored_one_and_an_older_or_equal_one_does_not() -> None:
    assert is_newer_snapshot(at(), None)
    assert is_newer_snapshot(at(1), at())
    assert not is_newer_snapshot(at(-1), at())  # late and older: changes nothing
    assert not is_newer_snapshot(at(-1, overdue=999_999), at())  # whatever it says
    assert not is_newer_snapshot(at(), at())  # a repeat


def test_equal_event_times_are_ordered_by_due_date_then_dpd_then_amount() -> None:
    assert is_newer_snapshot(at(due=DUE + timedelta(days=30)), at())
    assert is_newer_snapshot(at(dpd=10), at(dpd=9))
    assert is_newer_snapshot(at(overdue=250_001), at())
    assert not is_newer_snapshot(at(dpd=40, due=DUE - timedelta(days=30)), at())


def test_whatever_the_arrival_order_the_same_snapshot_wins() -> None:
    snapshots = [at(0), at(2), at(1), at(2, overdue=1), at(2, dpd=10)]
    winners = set()
    for order in permutations(snapshots):
        stored: SnapshotTime | None = None
        for s in order:
            if is_newer_snapshot(s, stored):
                stored = s
        winners.add(stored)
    assert winners == {at(2, dpd=10)}


def pay(amount: int, hours: float, currency: str = "CNY") -> PaymentFact:
    return PaymentFact(amount, currency, AS_OF + timedelta(hours=hours))


@pytest.mark.parametrize(("payments", "expected"), [
    pytest.param([], 250_000, id="no-payments"),
    pytest.param([pay(50_000, -1)], 250_000, id="before-the-snapshot-already-in-it"),
    pytest.param([pay(50_000, 0)], 250_000, id="at-the-snapshot-time-already-in-it"),
    pytest.param([pay(50_000, 1)], 200_000, id="after-the-snapshot"),
    pytest.param([pay(50_000, -1), pay(30_000, 1), pay(20_000, 2)], 200_000, id="before-and-after"),
    pytest.param([pay(50_000, 1, "USD")], 250_000, id="another-currency-not-counted"),
    pytest.param([pay(200_000, 1), pay(100_000, 2)], 0, id="overpaid-floored-at-zero"),
    pytest.param([pay(250_000, 1)], 0, id="paid-exactly"),
])
def test_overdue_now_is_the_snapshot_less_payments_booked_after_it(
        payments: list[PaymentFact], expected: int) -> None:
    assert overdue_now(reported_minor=250_000, currency="CNY", as_of=AS_OF, payments=payments) == expected
    # the order payments are listed in does not matter
    assert overdue_now(reported_minor=250_000, currency="CNY", as_of=AS_OF, payments=payments[::-1]) == expected


def test_a_plan_at_or_above_the_overdue_amount_is_accepted() -> None:
    require_cover(total_minor=250_000, overdue_minor=250_000, currency="CNY")
    require_cover(total_minor=250_001, overdue_minor=250_000, currency="CNY")
    require_cover(total_minor=1, overdue_minor=0, currency="CNY")  # nothing overdue (paid since)


def test_a_plan_below_the_overdue_amount_is_refused_saying_both_amounts_in_the_currency() -> None:
    with pytest.raises(PlanDoesNotCover) as refused:
        require_cover(total_minor=100, overdue_minor=250_000, currency="CNY")
    assert str(refused.value) == ("a plan must cover the 2,500.00 CNY overdue; this one totals 1.00 CNY; waivers "
                                  "need an approval: ask for a quote (POST /v1/accounts/{account_id}/quotes) and agree "
                                  "one of its offers")
    assert (PlanDoesNotCover.status, PlanDoesNotCover.title) == (422, "Plan does not cover the overdue amount")
    jpy = "cover the 1,234,567 JPY overdue; this one totals 1,234,566 JPY"
    with pytest.raises(PlanDoesNotCover, match=re.escape(jpy)):
        require_cover(total_minor=1_234_566, overdue_minor=1_234_567, currency="JPY")
    with pytest.raises(PlanDoesNotCover, match=re.escape("cover the 1.250 KWD overdue; this one totals 0.500 KWD")):
        require_cover(total_minor=500, overdue_minor=1_250, currency="KWD")

"""Unit tests for repayment plan rules (services/plans/domain/schedule.py)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.plans.domain.schedule import (
    MAX_INSTALMENTS,
    PlanError,
    ScheduledInstalment,
    allocate,
    build_schedule,
)

PROPS = settings(max_examples=200, deadline=None, database=None)
TODAY = date(2026, 5, 12)


def monthly(n: int, amount: str = "100.00", start: date = TODAY) -> list[tuple[date, Decimal]]:
    return [(start + timedelta(days=30 * i), Decimal(amount)) for i in range(n)]


def test_build_schedule_numbers_from_one_and_converts_to_minor() -> None:
    schedule = build_schedule(
        [(TODAY, Decimal("500.00")), (date(2026, 6, 12), Decimal("250.5")),
         (date(2026, 7, 12), Decimal("1"))],
        currency="CNY", today=TODAY)
    assert schedule == [
        ScheduledInstalment(1, TODAY, 50000),
        ScheduledInstalment(2, date(2026, 6, 12), 25050),
        ScheduledInstalment(3, date(2026, 7, 12), 100),
    ]


def test_build_schedule_uses_currency_exponent() -> None:
    assert build_schedule([(TODAY, Decimal("1500"))], currency="JPY", today=TODAY)[0].amount_minor == 1500
    assert build_schedule([(TODAY, Decimal("1.5"))], currency="KWD", today=TODAY)[0].amount_minor == 1500


def test_build_schedule_accepts_the_maximum() -> None:
    schedule = build_schedule(monthly(MAX_INSTALMENTS), currency="CNY", today=TODAY)
    assert [i.seq for i in schedule] == list(range(1, MAX_INSTALMENTS + 1))


@pytest.mark.parametrize(
    ("instalments", "currency", "message"),
    [
        ([], "CNY", "between 1 and 60"),
        (monthly(MAX_INSTALMENTS + 1), "CNY", "between 1 and 60"),
        ([(TODAY, Decimal("0"))], "CNY", "instalment 1: amount must be positive"),
        ([(TODAY, Decimal("10")), (date(2026, 6, 1), Decimal("-5"))], "CNY",
         "instalment 2: amount must be positive"),
        ([(TODAY, Decimal("10.001"))], "CNY", "instalment 1: .*decimal places"),
        ([(TODAY, Decimal("10.5"))], "JPY", "instalment 1: .*decimal places"),
        ([(TODAY - timedelta(days=1), Decimal("10"))], "CNY",
         "instalment 1: due date 2026-05-11 is in the past"),
        ([(TODAY, Decimal("10")), (TODAY, Decimal("10"))], "CNY",
         "instalment 2: due dates must strictly increase"),
        ([(date(2026, 7, 1), Decimal("10")), (date(2026, 6, 1), Decimal("10"))], "CNY",
         "instalment 2: due dates must strictly increase"),
    ],
)
def test_build_schedule_validation_errors(instalments: list[tuple[date, Decimal]], currency: str,
                                          message: str) -> None:
    with pytest.raises(PlanError, match=message):
        build_schedule(instalments, currency=currency, today=TODAY)


def test_plan_error_is_a_value_error() -> None:
    assert issubclass(PlanError, ValueError)


@PROPS
@given(gaps=st.lists(st.integers(1, 90), min_size=1, max_size=MAX_INSTALMENTS),
       cents=st.lists(st.integers(1, 10**9), min_size=MAX_INSTALMENTS, max_size=MAX_INSTALMENTS),
       offset=st.integers(0, 30))
def test_valid_schedules_round_trip(gaps: list[int], cents: list[int], offset: int) -> None:
    due = TODAY + timedelta(days=offset)
    proposed = []
    for gap, minor in zip(gaps, cents, strict=False):
        proposed.append((due, Decimal(minor).scaleb(-2)))
        due += timedelta(days=gap)
    schedule = build_schedule(proposed, currency="CNY", today=TODAY)
    assert [i.seq for i in schedule] == list(range(1, len(proposed) + 1))
    assert [i.due_date for i in schedule] == [d for d, _ in proposed]
    assert [i.amount_minor for i in schedule] == cents[: len(proposed)]


# --- allocate ---------------------------------------------------------------------------------------

def test_allocate_examples() -> None:
    owed = [(1, 1000), (2, 1000), (3, 1000)]
    assert allocate(1500, owed) == [(1, 1000), (2, 500)]
    assert allocate(1000, owed) == [(1, 1000)]
    assert allocate(5000, owed) == [(1, 1000), (2, 1000), (3, 1000)]
    assert allocate(0, owed) == []
    assert allocate(-10, owed) == []
    assert allocate(100, []) == []
    assert allocate(700, [(1, 0), (2, 300), (3, 1000)]) == [(2, 300), (3, 400)]


outstanding = st.lists(st.integers(0, 10**7), max_size=40).map(lambda owed: list(enumerate(owed, start=1)))


@PROPS
@given(payment=st.integers(0, 5 * 10**8), owed=outstanding)
def test_allocate_properties(payment: int, owed: list[tuple[int, int]]) -> None:
    applied = allocate(payment, owed)
    by_seq = dict(applied)
    owed_by_seq = dict(owed)
    # total applied is what could be applied
    assert sum(by_seq.values()) == min(payment, sum(owed_by_seq.values()))
    # each instalment appears once, in order, gets something positive, never more than it owes
    assert [seq for seq, _ in applied] == sorted(by_seq)
    assert len(by_seq) == len(applied)
    for seq, amount in applied:
        assert 0 < amount <= owed_by_seq[seq]
    # oldest first: an instalment only gets money once every earlier one is paid in full
    for seq, _ in applied:
        for earlier, earlier_owed in owed:
            if earlier >= seq:
                break
            assert by_seq.get(earlier, 0) == earlier_owed

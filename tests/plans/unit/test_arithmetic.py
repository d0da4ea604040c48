"""Negotiation arithmetic (services/plans/domain/arithmetic.py) as tables and properties: schedules and splits add up
exactly for any amount, currency and shares; a promise is kept, partial or broken exactly as defined, for any
payments in any order."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.plans.domain.arithmetic import BASIS, add_months, even_schedule, promise_status, split
from services.plans.domain.schedule import PlanError
from shared.money import from_minor, minor_digits

PROPS = settings(max_examples=300, deadline=None, database=None)
CURRENCIES = ["CNY", "USD", "GBP", "JPY", "KWD", "BHD", "CLF", "XOF"]


@pytest.mark.parametrize(("total", "count", "expected"), [
    (1_000_00, 4, [25_000, 25_000, 25_000, 25_000]),
    (1_000_01, 4, [25_001, 25_000, 25_000, 25_000]),
    (1_000_03, 4, [25_001, 25_001, 25_001, 25_000]),
    (7, 7, [1] * 7),
    (250_000, 3, [83_334, 83_333, 83_333]),
])
def test_equal_instalments_with_the_remainder_on_the_first(total: int, count: int, expected: list[int]) -> None:
    assert [i.amount_minor for i in even_schedule(total, count, first_due=date(2026, 1, 31))] == expected


def test_monthly_due_dates_keep_the_day_and_clamp_to_short_months() -> None:
    dates = [i.due_date for i in even_schedule(400, 4, first_due=date(2026, 1, 31))]
    assert dates == [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30)]
    assert add_months(date(2027, 12, 15), 2) == date(2028, 2, 15)
    assert add_months(date(2028, 1, 31), 1) == date(2028, 2, 29)  # a leap year
    weekly = [i.due_date for i in even_schedule(300, 3, first_due=date(2026, 1, 1), monthly=False, every_days=7)]
    assert weekly == [date(2026, 1, 1), date(2026, 1, 8), date(2026, 1, 15)]


@pytest.mark.parametrize(("args", "says"), [
    ((0, 1), "positive"), ((5, 6), "cannot be split"), ((100, 0), "1 to 360"), ((100, 361), "1 to 360"),
])
def test_a_schedule_that_cannot_be_made_is_refused(args: tuple[int, int], says: str) -> None:
    with pytest.raises(PlanError, match=says):
        even_schedule(*args, first_due=date(2026, 1, 1))


def test_a_schedule_below_the_minimum_instalment_is_refused() -> None:
    with pytest.raises(PlanError, match="below the minimum instalment 5000"):
        even_schedule(10_000, 3, first_due=date(2026, 1, 1), min_instalment_minor=5_000)


@PROPS
@given(total=st.integers(1, 10**15), count=st.integers(1, 360), currency=st.sampled_from(CURRENCIES),
       day=st.dates(date(2000, 1, 1), date(2090, 12, 31)))
def test_a_schedule_adds_up_exactly_in_any_currency(total: int, count: int, currency: str, day: date) -> None:
    if count > total:
        return
    schedule = even_schedule(total, count, first_due=day)
    amounts = [i.amount_minor for i in schedule]
    assert sum(amounts) == total and len(amounts) == count
    assert max(amounts) - min(amounts) <= 1 and amounts == sorted(amounts, reverse=True)
    # in major units too: the currency's exponent turns each into an exact Decimal that sums to the total
    assert sum(from_minor(a, currency) for a in amounts) == from_minor(total, currency)
    assert all(from_minor(a, currency).as_tuple().exponent == -minor_digits(currency) for a in amounts[:1])
    dates = [i.due_date for i in schedule]
    assert dates == sorted(set(dates)) and [i.seq for i in schedule] == list(range(1, count + 1))


@pytest.mark.parametrize(("amount", "shares", "expected"), [
    (10_000, {"bank": 7_000, "partner": 3_000}, {"bank": 7_000, "partner": 3_000}),
    (1, {"bank": 5_000, "partner": 5_000}, {"bank": 1, "partner": 0}),            # tie: the name first in order
    (1, {"zeta": 5_000, "alpha": 5_000}, {"alpha": 1, "zeta": 0}),
    (100, {"a": 3_333, "b": 3_333, "c": 3_334}, {"a": 33, "b": 33, "c": 34}),
    (2, {"a": 3_333, "b": 3_333, "c": 3_334}, {"a": 1, "b": 0, "c": 1}),          # largest remainders first
    (0, {"a": 10_000}, {"a": 0}),
])
def test_a_payment_is_split_by_shares_with_the_largest_remainders(amount: int, shares: dict[str, int],
                                                                  expected: dict[str, int]) -> None:
    assert split(amount, shares) == expected


@pytest.mark.parametrize(("amount", "shares", "says"), [
    (100, {"a": 9_000}, "not 10000"), (100, {"a": 11_000, "b": -1_000}, "non-negative"), (100, {}, "non-negative"),
    (-1, {"a": 10_000}, "negative"),
])
def test_shares_that_do_not_make_a_whole_are_refused(amount: int, shares: dict[str, int], says: str) -> None:
    with pytest.raises(PlanError, match=says):
        split(amount, shares)


@st.composite
def shares(draw: st.DrawFn) -> dict[str, int]:
    cuts = sorted(draw(st.lists(st.integers(0, BASIS), max_size=6)))
    bounds = [0, *cuts, BASIS]
    names = draw(st.lists(st.text("abcdefgh", min_size=1, max_size=5), min_size=len(bounds) - 1,
                          max_size=len(bounds) - 1, unique=True))
    return {name: bounds[k + 1] - bounds[k] for k, name in enumerate(names)}


@PROPS
@given(amount=st.integers(0, 10**15), parts=shares())
def test_a_split_adds_up_exactly_and_each_part_is_within_one_minor_unit_of_its_share(
        amount: int, parts: dict[str, int]) -> None:
    got = split(amount, parts)
    assert sum(got.values()) == amount and set(got) == set(parts)
    for party, bp in parts.items():
        assert abs(got[party] * BASIS - amount * bp) < BASIS  # |part - exact share| < 1 minor unit
    # the order the shares are given in changes nothing
    assert split(amount, dict(reversed(list(parts.items())))) == got


DUE = date(2026, 3, 10)


@pytest.mark.parametrize(("payments", "today", "expected"), [
    ([], DUE, "open"),
    ([], DUE + timedelta(days=2), "open"),                           # the grace (2 days) has not ended
    ([], DUE + timedelta(days=3), "broken"),
    ([(DUE - timedelta(days=1), 500)], DUE - timedelta(days=5), "kept"),  # kept at once, before the date
    ([(DUE, 200)], DUE + timedelta(days=3), "partial"),
    ([(DUE, 200), (DUE + timedelta(days=2), 300)], DUE + timedelta(days=9), "kept"),  # within the grace
    ([(DUE, 200), (DUE + timedelta(days=3), 300)], DUE + timedelta(days=9), "partial"),  # after it: not counted
    ([(DUE + timedelta(days=4), 500)], DUE + timedelta(days=9), "broken"),
])
def test_a_promise_is_kept_partial_or_broken_by_its_definition(payments: list[tuple[date, int]], today: date,
                                                               expected: str) -> None:
    assert promise_status(amount_minor=500, due_on=DUE, grace_days=2, payments=payments, today=today) == expected


@PROPS
@given(amount=st.integers(1, 10_000), grace=st.integers(0, 5),
       payments=st.lists(st.tuples(st.integers(-10, 20), st.integers(1, 6_000)), max_size=8),
       today=st.integers(-10, 30), data=st.data())
def test_a_promise_follows_its_definition_for_any_payments_in_any_order(
        amount: int, grace: int, payments: list[tuple[int, int]], today: int, data: st.DataObject) -> None:
    dated = [(DUE + timedelta(days=d), a) for d, a in payments]
    status = promise_status(amount_minor=amount, due_on=DUE, grace_days=grace, payments=dated,
                            today=DUE + timedelta(days=today))
    in_time = sum(a for d, a in payments if d <= grace)
    expected = ("kept" if in_time >= amount else "open" if today <= grace
                else "partial" if in_time > 0 else "broken")
    assert status == expected
    shuffled = data.draw(st.permutations(dated))
    assert promise_status(amount_minor=amount, due_on=DUE, grace_days=grace, payments=shuffled,
                          today=DUE + timedelta(days=today)) == status
    # one more payment in time never makes it worse
    better = promise_status(amount_minor=amount, due_on=DUE, grace_days=grace, payments=[*dated, (DUE, 1)],
                            today=DUE + timedelta(days=today))
    rank = {"broken": 0, "partial": 1, "open": 1, "kept": 2}
    assert rank[better] >= rank[status]

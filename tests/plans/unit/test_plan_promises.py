"""Unit tests for promises to pay made in plans (services/plans/domain/promises.py): the lifecycle as an explicit
table over every (state, event) pair, the deadline in the account's time zone, the checks of a new promise, and
hypothesis properties: for any payments (amounts, times before or after the promise was made and its deadline, other
currencies), delivered in any order with the timer ticking in between, the promise ends kept, partial or broken
exactly as the definition (domain/arithmetic.py promise_status) says."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.plans.domain.accounts import PaymentFact
from services.plans.domain.arithmetic import promise_status
from services.plans.domain.promises import (
    PROMISE,
    PromiseEvent,
    PromiseStatus,
    PromiseTerms,
    counted_minor,
    deadline,
    event_towards,
    latest_missable_due_date,
    refusals,
    status_of,
)
from shared.domain import IllegalTransition

PROPS = settings(max_examples=400, deadline=None, database=None)
S, E = PromiseStatus, PromiseEvent

# From the module docstring: open until kept, decided at the deadline (partial or broken) or cancelled; a payment
# booked in time but delivered after the decision moves a partial or broken promise on; kept and cancelled are final.
TABLE: dict[tuple[PromiseStatus, PromiseEvent], PromiseStatus] = {
    (S.OPEN, E.PAID): S.KEPT,
    (S.OPEN, E.DEADLINE_PART_PAID): S.PARTIAL,
    (S.OPEN, E.DEADLINE_UNPAID): S.BROKEN,
    (S.OPEN, E.CANCEL): S.CANCELLED,
    (S.PARTIAL, E.PAID): S.KEPT,
    (S.BROKEN, E.PAID): S.KEPT,
    (S.BROKEN, E.LATE_PART_PAYMENT): S.PARTIAL,
}


@pytest.mark.parametrize(("state", "event"), [(s, e) for s in PromiseStatus for e in PromiseEvent])
def test_every_state_and_event_is_as_the_table_says(state: PromiseStatus, event: PromiseEvent) -> None:
    if (state, event) in TABLE:
        assert PROMISE.allows(state, event)
        assert PROMISE.apply(state, event) == TABLE[(state, event)]
    else:
        assert not PROMISE.allows(state, event)
        with pytest.raises(IllegalTransition):
            PROMISE.apply(state, event)


def test_kept_and_cancelled_are_final_and_only_open_cancels() -> None:
    assert PROMISE.terminal() == {S.KEPT, S.CANCELLED}
    assert [s for s in PromiseStatus if PROMISE.allows(s, E.CANCEL)] == [S.OPEN]


@pytest.mark.parametrize(("current", "target", "event"), [
    (S.OPEN, S.OPEN, None), (S.OPEN, S.KEPT, E.PAID), (S.OPEN, S.PARTIAL, E.DEADLINE_PART_PAID),
    (S.OPEN, S.BROKEN, E.DEADLINE_UNPAID), (S.PARTIAL, S.KEPT, E.PAID), (S.BROKEN, S.KEPT, E.PAID),
    (S.BROKEN, S.PARTIAL, E.LATE_PART_PAYMENT), (S.PARTIAL, S.PARTIAL, None), (S.PARTIAL, S.OPEN, None),
    (S.KEPT, S.BROKEN, None), (S.CANCELLED, S.KEPT, None), (S.CANCELLED, S.BROKEN, None),
])
def test_the_event_towards_a_derived_status(current: PromiseStatus, target: PromiseStatus,
                                            event: PromiseEvent | None) -> None:
    assert event_towards(current, target) == event


@pytest.mark.parametrize(("day", "grace", "zone", "expected"), [
    # the end of 5 Dec plus 2 days in Shanghai (UTC+8) is 8 Dec 00:00 there
    (date(2026, 12, 5), 2, "Asia/Shanghai", datetime(2026, 12, 7, 16, tzinfo=UTC)),
    (date(2026, 12, 5), 0, "Asia/Shanghai", datetime(2026, 12, 5, 16, tzinfo=UTC)),
    # New York across the end of daylight saving (1 Nov 2026): midnight of 3 Nov is UTC-5
    (date(2026, 10, 31), 2, "America/New_York", datetime(2026, 11, 3, 5, tzinfo=UTC)),
    (date(2026, 12, 5), 0, "Pacific/Kiritimati", datetime(2026, 12, 5, 10, tzinfo=UTC)),
    # no zone, or one the zone database does not know: the default, Asia/Shanghai
    (date(2026, 12, 5), 1, None, datetime(2026, 12, 6, 16, tzinfo=UTC)),
    (date(2026, 12, 5), 1, "Mars/Olympus", datetime(2026, 12, 6, 16, tzinfo=UTC)),
])
def test_the_deadline_is_the_end_of_the_day_plus_grace_in_the_zone(day: date, grace: int, zone: str | None,
                                                                   expected: datetime) -> None:
    assert deadline(day=day, grace_days=grace, time_zone=zone) == expected


TODAY = date(2026, 12, 1)


def refused(**changes: object) -> list[str]:
    args: dict[str, object] = {"amount_minor": 50_000, "currency": "CNY", "account_currency": "CNY",
                               "due_on": TODAY + timedelta(days=3), "today": TODAY, "max_days": 30, "source": "agent"}
    return refusals(**(args | changes))  # type: ignore[arg-type]


@pytest.mark.parametrize(("changes", "reasons"), [
    ({}, []),
    ({"due_on": TODAY}, []),
    ({"due_on": TODAY + timedelta(days=30)}, []),
    ({"amount_minor": 10**15}, []),
    ({"source": "portal"}, []),
    ({"amount_minor": 0}, ["amount"]),
    ({"amount_minor": -1}, ["amount"]),
    ({"amount_minor": 10**15 + 1}, ["amount"]),
    ({"currency": "USD"}, ["currency"]),
    ({"due_on": TODAY - timedelta(days=1)}, ["due_on"]),
    ({"due_on": TODAY + timedelta(days=31)}, ["due_on"]),
    ({"max_days": 5, "due_on": TODAY + timedelta(days=6)}, ["due_on"]),
    ({"source": "robot"}, ["source"]),
    # every reason at once, so the caller fixes them in one go
    ({"amount_minor": 0, "currency": "USD", "due_on": date(2000, 1, 1), "source": "x"},
     ["amount", "currency", "due_on", "source"]),
])
def test_a_new_promise_is_refused_with_every_reason(changes: dict[str, object], reasons: list[str]) -> None:
    assert [r.split(":")[0] for r in refused(**changes)] == reasons


ZONES = ["Asia/Shanghai", "America/New_York", "Pacific/Kiritimati", "Pacific/Pago_Pago", "Europe/London",
         "Asia/Kolkata"]
MADE = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)  # a month with a daylight saving change in New York and London


@st.composite
def promises(draw: st.DrawFn) -> PromiseTerms:
    return PromiseTerms(amount_minor=draw(st.integers(1, 10_000)), currency="CNY",
                        due_on=MADE.date() + timedelta(days=draw(st.integers(-1, 30))),
                        made_at=MADE + timedelta(minutes=draw(st.integers(-600, 600))),
                        grace_days=draw(st.integers(0, 5)), time_zone=draw(st.sampled_from(ZONES)))


def payments_around(terms: PromiseTerms) -> st.SearchStrategy[list[PaymentFact]]:
    """Payments booked from a day before the promise to days after its deadline, some exactly at the edges, some
    in another currency."""
    edges = [terms.made_at, terms.made_at - timedelta(microseconds=1), terms.deadline,
             terms.deadline - timedelta(microseconds=1)]
    at = st.one_of(st.sampled_from(edges), st.integers(-24 * 60, 40 * 24 * 60).map(
        lambda m: terms.made_at + timedelta(minutes=m)))
    return st.lists(st.builds(PaymentFact, amount_minor=st.integers(1, 6_000),
                              currency=st.sampled_from(["CNY", "CNY", "CNY", "USD"]), paid_at=at), max_size=8)


def by_the_definition(terms: PromiseTerms, payments: list[PaymentFact], now: datetime) -> str:
    """The oracle: promise_status over the payments in the promise's currency booked since it was made, each on
    the day the account's clock showed when it was booked."""
    local = ZoneInfo(terms.time_zone)
    return promise_status(amount_minor=terms.amount_minor, due_on=terms.due_on, grace_days=terms.grace_days,
                          payments=[(p.paid_at.astimezone(local).date(), p.amount_minor) for p in payments
                                    if p.currency == terms.currency and p.paid_at is not None
                                    and p.paid_at >= terms.made_at],
                          today=now.astimezone(local).date())


def in_time(terms: PromiseTerms, payments: list[PaymentFact]) -> int:
    last = terms.due_on + timedelta(days=terms.grace_days)
    local = ZoneInfo(terms.time_zone)
    return sum(p.amount_minor for p in payments if p.currency == terms.currency and p.paid_at is not None
               and p.paid_at >= terms.made_at and p.paid_at.astimezone(local).date() <= last)


@PROPS
@given(data=st.data(), terms=promises())
def test_the_status_is_the_definitions_at_any_time(data: st.DataObject, terms: PromiseTerms) -> None:
    payments = data.draw(payments_around(terms))
    now = terms.made_at + timedelta(minutes=data.draw(st.integers(0, 40 * 24 * 60)))
    assert status_of(terms, payments, now=now).value == by_the_definition(terms, payments, now)
    assert counted_minor(terms, payments) == in_time(terms, payments)


@PROPS
@given(data=st.data(), terms=promises())
def test_any_arrival_order_with_the_timer_in_between_ends_as_the_definition_says(
        data: st.DataObject, terms: PromiseTerms) -> None:
    payments = data.draw(payments_around(terms))
    # each payment arrives, and the timer ticks, in any order at ever later instants; a last tick at the end
    steps: list[PaymentFact | None] = data.draw(st.permutations([*payments, *[None] * data.draw(st.integers(0, 3))]))
    offsets = sorted(data.draw(st.lists(st.integers(0, 40 * 24 * 60), min_size=len(steps) + 1,
                                        max_size=len(steps) + 1)))
    status, known, seen = S.OPEN, [], [S.OPEN]
    for step, offset in zip([*steps, None], offsets, strict=True):
        now = terms.made_at + timedelta(minutes=offset)
        if step is not None:
            known.append(step)  # the consumer derives the status again at once
        elif now < terms.deadline:
            continue  # the timer claims only promises whose deadline passed
        event = event_towards(status, status_of(terms, known, now=now))
        if event is not None:
            status = PROMISE.apply(status, event)
            seen.append(status)
    end = terms.made_at + timedelta(minutes=offsets[-1])
    assert status.value == by_the_definition(terms, payments, end)
    # statuses only move forward: once decided it never reads open again, once kept nothing changes
    assert S.OPEN not in seen[1:]
    assert S.KEPT not in seen[:-1]


@PROPS
@given(data=st.data(), terms=promises())
def test_a_cancelled_promise_stays_cancelled_whatever_is_paid(data: st.DataObject, terms: PromiseTerms) -> None:
    payments = data.draw(payments_around(terms))
    later = terms.deadline + timedelta(days=data.draw(st.integers(-3, 3)))
    assert event_towards(S.CANCELLED, status_of(terms, payments, now=later)) is None


def test_a_payment_booked_after_the_deadline_counts_for_nothing() -> None:
    terms = PromiseTerms(amount_minor=500, currency="CNY", due_on=date(2026, 3, 2), made_at=MADE, grace_days=0,
                         time_zone="Asia/Shanghai")
    late = [PaymentFact(500, "CNY", terms.deadline)]
    assert (counted_minor(terms, late), status_of(terms, late, now=terms.deadline)) == (0, S.BROKEN)
    just_in_time = [PaymentFact(500, "CNY", terms.deadline - timedelta(microseconds=1))]
    assert status_of(terms, just_in_time, now=terms.deadline + timedelta(days=9)) == S.KEPT
    before_made = [PaymentFact(500, "CNY", MADE - timedelta(seconds=1))]
    assert status_of(terms, before_made, now=terms.deadline) == S.BROKEN
    other_currency = [PaymentFact(500, "USD", MADE), PaymentFact(200, "CNY", MADE)]
    assert status_of(terms, other_currency, now=terms.deadline) == S.PARTIAL


@PROPS
@given(due=st.dates(date(2020, 1, 1), date(2030, 12, 31)), grace=st.integers(0, 60),
       zone=st.sampled_from([*ZONES, "Etc/GMT-14", "Etc/GMT+12"]),
       minutes=st.integers(-3 * 24 * 60, 70 * 24 * 60))
def test_the_monitors_claim_never_misses_a_plan_past_its_grace_in_any_zone(due: date, grace: int, zone: str,
                                                                             minutes: int) -> None:
    now = datetime.combine(due, datetime.min.time(), tzinfo=UTC) + timedelta(minutes=minutes)
    if now >= deadline(day=due, grace_days=grace, time_zone=zone):
        assert due <= latest_missable_due_date(now=now, grace_days=grace)
    # and it claims at most two days' due dates too early
    if due <= latest_missable_due_date(now=now, grace_days=grace) - timedelta(days=2):
        assert now >= deadline(day=due, grace_days=grace, time_zone=zone)

"""Customer behaviour (simulator/behaviour.py) and the built-in policy (simulator/history.py)."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from datetime import date

import pytest

from services.segmentation.domain.segments import classify
from simulator.behaviour import (
    Contact,
    ContactMade,
    contact_lift,
    hour_class,
    initial_state,
    pay_probability,
    segment_of,
    step,
)
from simulator.history import timeline_step
from simulator.portfolio import draw_account

START = date(2025, 1, 1)


def _overdue_state(index: int = 0, dpd: int = 5):
    acc = draw_account(index, seed=1, start=START)
    state = initial_state(acc, START)
    return replace(state, overdue_minor=acc.instalment_minor, cycle_due_day=20 - dpd, cycles=1), 20


def test_step_is_pure_and_deterministic() -> None:
    state, day = _overdue_state()
    before = replace(state)
    contacts = [Contact("call", 10, "call")]
    first = step(state, day, contacts, random.Random(42))
    assert step(state, day, contacts, random.Random(42)) == first
    assert state == before  # the input is untouched


def test_a_reminder_lifts_the_payment_probability_and_fades() -> None:
    state, day = _overdue_state()
    base = pay_probability(state, day)
    reached = replace(state, contacts=(ContactMade(day, "sms", 10, "reminder", True, 1),))
    assert pay_probability(reached, day) > base
    assert contact_lift(reached, day) > contact_lift(reached, day + 3) > contact_lift(reached, day + 9) > 0
    not_reached = replace(state, contacts=(ContactMade(day, "sms", 10, "reminder", False, 1),))
    assert pay_probability(not_reached, day) == base
    at_night = replace(state, contacts=(ContactMade(day, "sms", 23, "reminder", True, 1),))
    assert base < pay_probability(at_night, day) < pay_probability(reached, day)


def test_the_lift_depends_on_the_channel_and_the_segment() -> None:
    state, day = _overdue_state()
    lifts = {ch: contact_lift(replace(state, contacts=(ContactMade(day, ch, 10, "x", True, 1),)), day)
             for ch in ("email", "sms", "call", "field")}
    assert lifts["email"] < lifts["sms"] < lifts["call"] < lifts["field"]
    prime = replace(state, account=replace(state.account, rating="A", credit_score=800))
    risky = replace(state, account=replace(state.account, rating="E", credit_score=400))
    sms = (ContactMade(day, "sms", 10, "x", True, 1),)
    assert contact_lift(replace(prime, contacts=sms), day) > contact_lift(replace(risky, contacts=sms), day)


def test_complaints_are_likelier_at_bad_hours() -> None:
    state, day = _overdue_state()
    rng = random.Random(7)

    def complaints(hour: int) -> int:
        return sum(len(step(state, day, [Contact("call", hour)], rng)[1].complaints) for _ in range(6000))

    assert complaints(23) > 2 * complaints(11)


@pytest.mark.parametrize(("hour", "kind"), [(7, "bad"), (8, "edge"), (9, "good"), (19, "good"), (20, "edge"),
                                            (21, "edge"), (22, "bad"), (0, "bad")])
def test_hour_classes(hour: int, kind: str) -> None:
    assert hour_class(hour) == kind


def test_segment_copy_matches_segmentation_seg_v1() -> None:
    for rating, score, dpd in itertools.product("ABCDE", [None, 300, 599, 600, 650, 700, 749, 750, 950],
                                                [0, 1, 15, 30, 31, 60, 90, 91, 200]):
        expected = classify(credit_rating=rating, credit_score=score, days_past_due=dpd).segment.value
        assert segment_of(rating, score, dpd) == expected, (rating, score, dpd)


@pytest.mark.parametrize(
    ("segment", "dpd", "phone", "email", "address", "expected"),
    [
        ("prime", 3, True, True, True, ("reminder", "email")),
        ("standard", 3, True, True, True, ("reminder", "sms")),
        ("standard", 3, False, True, True, ("reminder", "email")),
        ("standard", 3, False, False, True, None),
        ("standard", 20, True, True, True, ("call", "call")),
        ("standard", 20, False, True, True, ("reminder", "email")),
        ("standard", 40, True, True, True, ("field-visit", "field")),
        ("prime", 40, True, True, True, ("call", "call")),
        ("high_risk", 40, True, True, False, ("call", "call")),
    ],
)
def test_timeline_copy_follows_docs_domain(segment: str, dpd: int, phone: bool, email: bool, address: bool,
                                          expected: tuple[str, str] | None) -> None:
    assert timeline_step(segment=segment, days_past_due=dpd, has_phone=phone, has_email=email,
                         has_address=address) == expected


def test_an_overdue_instalment_starts_a_cycle_and_paying_it_cures() -> None:
    acc = replace(draw_account(0, seed=1, start=START), willingness=-9.0, ability=-9.0)
    state = initial_state(acc, START)
    state, events = step(state, state.next_due_day, [], random.Random(1))
    assert events.became_overdue and state.overdue_minor == acc.instalment_minor and state.cycles == 1
    good = replace(state, account=replace(acc, willingness=9.0, ability=9.0))
    day = state.next_due_day - 20
    cured, events = step(good, day, [], random.Random(1))
    assert events.cured and cured.overdue_minor == 0 and cured.cures == 1 and cured.cycle_due_day is None
    assert sum(p.amount_minor for p in events.payments) == acc.instalment_minor

"""Unit tests for the derived treatment status (services/scheduler/domain/standing.py): the amount overdue,
the status, and the supersede rules that make plan and outcome facts independent of arrival order."""

from __future__ import annotations

import typing
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scheduler.domain.standing import (
    PaymentFact,
    SnapshotTime,
    is_newer_snapshot,
    is_open,
    outcome_supersedes,
    overdue_now,
    plan_supersedes,
    standing,
)
from services.scheduler.domain.states import TreatmentStatus
from shared.contracts.events import ContactOutcomeV1

PROPS = settings(max_examples=300, deadline=None, database=None)
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.mark.parametrize(("payments", "expected"), [
    ([], 1000),
    ([PaymentFact(300, "CNY", at(1))], 700),                       # after the snapshot: deducted
    ([PaymentFact(300, "CNY", at(0))], 1000),                      # at its time: already in it
    ([PaymentFact(300, "CNY", at(-5))], 1000),                     # before it: already in it
    ([PaymentFact(300, "USD", at(1))], 1000),                      # another currency: never counted
    ([PaymentFact(300, None, None)], 1000),                        # kept before times were recorded
    ([PaymentFact(600, "CNY", at(1)), PaymentFact(600, "CNY", at(2))], 0),  # never below zero
])
def test_overdue_now_deducts_only_payments_booked_after_the_snapshot(
        payments: list[PaymentFact], expected: int) -> None:
    assert overdue_now(reported_minor=1000, currency="CNY", as_of=at(0), payments=payments) == expected


@pytest.mark.parametrize(("overdue", "plans", "status", "reason"), [
    (0, [], TreatmentStatus.STOPPED, "paid in full"),
    (0, ["p-1"], TreatmentStatus.STOPPED, "paid in full"),     # money beats an open plan
    (5, ["p-2", "p-1"], TreatmentStatus.PAUSED, "plan p-1 agreed"),
    (5, [], TreatmentStatus.ACTIVE, "segment reason"),
])
def test_standing(overdue: int, plans: list[str], status: TreatmentStatus, reason: str) -> None:
    result = standing(overdue_minor=overdue, open_plans=plans, active_reason="segment reason")
    assert (result.status, result.reason, result.overdue_minor) == (status, reason, overdue)


def test_only_an_agreed_plan_is_open() -> None:
    assert [k for k in ("agreed", "completed", "cancelled", "broken") if is_open(k)] == ["agreed"]


def test_a_newer_snapshot_wins_and_ties_are_broken_by_the_facts_not_the_order() -> None:
    old = SnapshotTime(at(0), date(2026, 2, 1), 28, 1000)
    assert is_newer_snapshot(old, None)
    assert is_newer_snapshot(SnapshotTime(at(1), date(2026, 2, 1), 28, 900), old)
    assert not is_newer_snapshot(SnapshotTime(at(-1), date(2026, 3, 1), 1, 5000), old)
    same_time_later_cycle = SnapshotTime(at(0), date(2026, 3, 1), 0, 10)
    assert is_newer_snapshot(same_time_later_cycle, old) and not is_newer_snapshot(old, same_time_later_cycle)
    assert not is_newer_snapshot(old, old)  # a duplicate changes nothing


def _fold(rule, facts: list[tuple[str, datetime]]) -> tuple[str, datetime] | None:  # type: ignore[no-untyped-def]
    kept = None
    for fact in facts:
        if rule(stored=kept, incoming=fact):
            kept = fact
    return kept


plan_facts = st.lists(st.tuples(st.sampled_from(["agreed", "completed", "cancelled", "broken"]),
                                st.integers(0, 5).map(at)), min_size=1, max_size=6)
OUTCOMES = sorted(typing.get_args(ContactOutcomeV1.model_fields["outcome"].annotation))
outcome_facts = st.lists(st.tuples(st.sampled_from(OUTCOMES),
                                   st.integers(0, 5).map(at)), min_size=1, max_size=6)


@PROPS
@given(plan_facts, st.randoms())
def test_a_plans_last_word_does_not_depend_on_arrival_order(facts: list[tuple[str, datetime]], rnd) -> None:  # type: ignore[no-untyped-def]
    shuffled = facts[:]
    rnd.shuffle(shuffled)
    assert _fold(plan_supersedes, shuffled) == _fold(plan_supersedes, sorted(facts, key=lambda f: f[1]))
    ends = [f for f in facts if f[0] != "agreed"]
    kept = _fold(plan_supersedes, shuffled)
    assert kept is not None and (kept[0] != "agreed") is bool(ends)  # any end beats agreed


@PROPS
@given(outcome_facts, st.randoms())
def test_a_contacts_newest_outcome_does_not_depend_on_arrival_order(facts: list[tuple[str, datetime]], rnd) -> None:  # type: ignore[no-untyped-def]
    shuffled = facts[:]
    rnd.shuffle(shuffled)
    kept = _fold(outcome_supersedes, shuffled)
    assert kept == _fold(outcome_supersedes, facts)
    assert kept is not None and kept[1] == max(t for _, t in facts)


def test_every_outcome_of_the_contract_has_its_own_rank() -> None:
    """Every value a ContactOutcomeV1 may carry (the dialer's call results too) is ordered against every other:
    at equal times exactly one of two different outcomes supersedes the other, whatever came first."""
    for a in OUTCOMES:
        for b in OUTCOMES:
            if a != b:
                assert outcome_supersedes(stored=(a, T0), incoming=(b, T0)) != \
                    outcome_supersedes(stored=(b, T0), incoming=(a, T0)), (a, b)
        assert not outcome_supersedes(stored=(a, T0), incoming=(a, T0))  # a duplicate changes nothing

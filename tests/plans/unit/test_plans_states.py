"""Unit tests for the repayment plan and instalment lifecycles (services/plans/domain/states.py), as
explicit tables over every (state, event) pair and as hypothesis properties (money in integer minor units)."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.plans.domain.states import (
    INSTALMENT,
    PLAN,
    InstalmentEvent,
    InstalmentStatus,
    PlanEvent,
    PlanStatus,
    instalment_status,
    payment_event,
)
from shared.domain import IllegalTransition

PROPS = settings(max_examples=300, deadline=None, database=None)

PS, PE = PlanStatus, PlanEvent
IS, IE = InstalmentStatus, InstalmentEvent

# From the module docstring: "agreed until it is cancelled (by a partner or agent), paid off (completed) or
# broken"; nothing happens to a plan once it left agreed.
PLAN_TABLE: dict[tuple[PlanStatus, PlanEvent], PlanStatus] = {
    (PS.AGREED, PE.CANCEL): PS.CANCELLED,
    (PS.AGREED, PE.PAID_OFF): PS.COMPLETED,
    (PS.AGREED, PE.BREAK): PS.BROKEN,
    # a plan beyond its maker's authority waits for its approvals (services/plans/domain/approvals.py)
    (PS.PENDING_APPROVAL, PE.APPROVE): PS.AGREED,
    (PS.PENDING_APPROVAL, PE.REJECT): PS.REJECTED,
    (PS.PENDING_APPROVAL, PE.CANCEL): PS.CANCELLED,
}
# "due until payments cover it (partly paid on the way) ... moves only forward".
INSTALMENT_TABLE: dict[tuple[InstalmentStatus, InstalmentEvent], InstalmentStatus] = {
    (IS.DUE, IE.PART_PAYMENT): IS.PARTLY_PAID,
    (IS.DUE, IE.SETTLED): IS.PAID,
    (IS.PARTLY_PAID, IE.PART_PAYMENT): IS.PARTLY_PAID,
    (IS.PARTLY_PAID, IE.SETTLED): IS.PAID,
}
RANK = {IS.DUE: 0, IS.PARTLY_PAID: 1, IS.PAID: 2}
PLAN_PAIRS = [(s, e) for s in PlanStatus for e in PlanEvent]
INSTALMENT_PAIRS = [(s, e) for s in InstalmentStatus for e in InstalmentEvent]


@pytest.mark.parametrize(("state", "event"), PLAN_PAIRS, ids=[f"{s.value}-{e.value}" for s, e in PLAN_PAIRS])
def test_plan_transition(state: PlanStatus, event: PlanEvent) -> None:
    expected = PLAN_TABLE.get((state, event))
    assert PLAN.allows(state, event) is (expected is not None)
    if expected is not None:
        assert PLAN.apply(state, event) is expected
        return
    with pytest.raises(IllegalTransition) as info:
        PLAN.apply(state, event)
    assert str(info.value) == f"plan: {event.value!r} does not apply to state {state.value!r}"
    assert (info.value.machine, info.value.state, info.value.event) == ("plan", state, event)


@pytest.mark.parametrize(("state", "event"), INSTALMENT_PAIRS,
                         ids=[f"{s.value}-{e.value}" for s, e in INSTALMENT_PAIRS])
def test_instalment_transition(state: InstalmentStatus, event: InstalmentEvent) -> None:
    expected = INSTALMENT_TABLE.get((state, event))
    assert INSTALMENT.allows(state, event) is (expected is not None)
    if expected is not None:
        assert INSTALMENT.apply(state, event) is expected
        return
    with pytest.raises(IllegalTransition) as info:
        INSTALMENT.apply(state, event)
    assert str(info.value) == f"instalment: {event.value!r} does not apply to state {state.value!r}"
    assert (info.value.machine, info.value.state, info.value.event) == ("instalment", state, event)


def test_terminal_states() -> None:
    assert PLAN.terminal() == {PS.CANCELLED, PS.COMPLETED, PS.BROKEN, PS.REJECTED}
    assert INSTALMENT.terminal() == {IS.PAID}


@pytest.mark.parametrize(("amount", "paid", "status"), [
    (10000, 0, IS.DUE),
    (10000, 1, IS.PARTLY_PAID),
    (10000, 9999, IS.PARTLY_PAID),
    (10000, 10000, IS.PAID),
    (10000, 12000, IS.PAID),  # overpaid is still paid
    (1, 0, IS.DUE),
    (1, 1, IS.PAID),
])
def test_instalment_status(amount: int, paid: int, status: InstalmentStatus) -> None:
    assert instalment_status(amount_minor=amount, paid_minor=paid) is status


@pytest.mark.parametrize(("owed", "applied", "event"), [
    (10000, 1, IE.PART_PAYMENT),
    (10000, 9999, IE.PART_PAYMENT),
    (10000, 10000, IE.SETTLED),
    (10000, 10001, IE.SETTLED),
    (1, 1, IE.SETTLED),
])
def test_payment_event(owed: int, applied: int, event: InstalmentEvent) -> None:
    assert payment_event(owed_minor=owed, applied_minor=applied) is event


# --- properties ------------------------------------------------------------------------------------


@PROPS
@given(st.lists(st.sampled_from(list(PlanEvent)), max_size=20))
def test_a_plan_that_left_agreed_never_changes(events: list[PlanEvent]) -> None:
    state, closed = PS.AGREED, False
    for event in events:
        before = state
        if PLAN.allows(state, event):
            state = PLAN.apply(state, event)
        else:
            with pytest.raises(IllegalTransition):
                PLAN.apply(state, event)
        assert state in PlanStatus
        if closed:
            assert state is before
        closed = closed or state is not PS.AGREED


@PROPS
@given(st.lists(st.sampled_from(list(InstalmentEvent)), max_size=20))
def test_instalment_never_moves_backward_and_paid_is_absorbing(events: list[InstalmentEvent]) -> None:
    state = IS.DUE
    for event in events:
        before = state
        if INSTALMENT.allows(state, event):
            state = INSTALMENT.apply(state, event)
        assert state in InstalmentStatus
        assert RANK[state] >= RANK[before]
        if before is IS.PAID:
            assert state is IS.PAID


@st.composite
def payment_splits(draw: st.DrawFn) -> tuple[int, list[int]]:
    """An instalment amount (minor units) and payments against it: a split of the whole amount, possibly
    stopped early, the last one possibly paying more than was owed."""
    amount = draw(st.integers(min_value=1, max_value=10**12))
    cuts = draw(st.lists(st.integers(min_value=1, max_value=max(amount - 1, 1)), max_size=12, unique=True))
    points = [0, *sorted(c for c in cuts if c < amount), amount]
    parts = [b - a for a, b in pairwise(points)]
    parts = parts[:draw(st.integers(min_value=1, max_value=len(parts)))]
    if sum(parts) == amount:
        parts[-1] += draw(st.integers(min_value=0, max_value=10**6))
    return amount, parts


@PROPS
@given(payment_splits())
def test_instalment_status_agrees_with_applying_payment_events(split: tuple[int, list[int]]) -> None:
    amount, payments = split
    assert all(p > 0 for p in payments)
    state, paid = IS.DUE, 0
    assert instalment_status(amount_minor=amount, paid_minor=paid) is state
    for payment in payments:
        owed = amount - paid
        assert owed > 0  # payments are allocated only to instalments that still owe something
        before = state
        state = INSTALMENT.apply(state, payment_event(owed_minor=owed, applied_minor=payment))
        paid += payment
        assert instalment_status(amount_minor=amount, paid_minor=paid) is state
        assert RANK[state] >= RANK[before]
    assert (state is IS.PAID) is (paid >= amount)

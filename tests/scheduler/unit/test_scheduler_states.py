"""Unit tests for the treatment and treatment step lifecycles (services/scheduler/domain/states.py),
as explicit tables over every (state, event) pair and as hypothesis properties over event sequences."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from services.scheduler.domain.states import (
    STEP,
    TREATMENT,
    StepEvent,
    StepStatus,
    TreatmentEvent,
    TreatmentStatus,
    outcome_event,
    overdue_event,
    plan_event,
)
from shared.domain import IllegalTransition

PROPS = settings(max_examples=300, deadline=None, database=None)

A, P, S = TreatmentStatus.ACTIVE, TreatmentStatus.PAUSED, TreatmentStatus.STOPPED
TE = TreatmentEvent

# Written from the module's docstrings and comments, not read from TREATMENT.transitions:
# - active: overdue data and plan ends keep it active, a plan pauses it, a payoff or a completed plan stops it;
# - paused: "new overdue data never unpauses: only the plan's end does"; a payoff or completed plan stops it;
# - stopped: "comes back only for a new delinquency"; "a plan agreed after the stop is honoured (paused)";
#   a late overdue update of the same cycle or a plan end does not apply.
TREATMENT_TABLE: dict[tuple[TreatmentStatus, TreatmentEvent], TreatmentStatus] = {
    (A, TE.OVERDUE_UPDATED): A,
    (A, TE.NEW_CYCLE): A,
    (A, TE.PLAN_AGREED): P,
    (A, TE.PLAN_ENDED): A,
    (A, TE.PLAN_COMPLETED): S,
    (A, TE.PAID_IN_FULL): S,
    (P, TE.OVERDUE_UPDATED): P,
    (P, TE.NEW_CYCLE): P,
    (P, TE.PLAN_AGREED): P,
    (P, TE.PLAN_ENDED): A,
    (P, TE.PLAN_COMPLETED): S,
    (P, TE.PAID_IN_FULL): S,
    (S, TE.NEW_CYCLE): A,
    (S, TE.PLAN_COMPLETED): S,
    (S, TE.PAID_IN_FULL): S,
}

SP, SR, SD, SF, SB, SC = (StepStatus.PENDING, StepStatus.REQUESTED, StepStatus.DONE, StepStatus.FAILED,
                          StepStatus.BLOCKED, StepStatus.CANCELLED)
SE = StepEvent

# From the StepStatus / StepEvent comments: a pending step is requested when planned or due, a requested one
# is deferred back to pending, blocked for good, done or failed; a later outcome corrects an earlier one;
# open steps (pending, requested) are cancelled when the treatment stops, and reopened when it is active again.
STEP_TABLE: dict[tuple[StepStatus, StepEvent], StepStatus] = {
    (SP, SE.PLANNED): SR,
    (SP, SE.DUE): SR,
    (SP, SE.CANCELLED): SC,
    (SR, SE.DEFERRED): SP,
    (SR, SE.BLOCKED): SB,
    (SR, SE.SUCCEEDED): SD,
    (SR, SE.FAILED): SF,
    (SR, SE.CANCELLED): SC,
    (SD, SE.SUCCEEDED): SD,
    (SD, SE.FAILED): SF,
    (SF, SE.SUCCEEDED): SD,
    (SF, SE.FAILED): SF,
    (SC, SE.REOPENED): SR,
}

TREATMENT_PAIRS = [(s, e) for s in TreatmentStatus for e in TreatmentEvent]
STEP_PAIRS = [(s, e) for s in StepStatus for e in StepEvent]


Transition = tuple[Any, Any, Any]  # (before, event, after)


def _ids(pairs: list[tuple[Any, Any]]) -> list[str]:
    return [f"{s.value}-{e.value}" for s, e in pairs]


def test_tables_cover_every_state_and_event() -> None:
    assert {s for s, _ in TREATMENT_TABLE} == set(TreatmentStatus)
    assert {e for _, e in TREATMENT_TABLE} == set(TreatmentEvent)
    assert {e for _, e in STEP_TABLE} == set(StepEvent)


@pytest.mark.parametrize(("state", "event"), TREATMENT_PAIRS, ids=_ids(TREATMENT_PAIRS))
def test_treatment_transition(state: TreatmentStatus, event: TreatmentEvent) -> None:
    expected = TREATMENT_TABLE.get((state, event))
    assert TREATMENT.allows(state, event) is (expected is not None)
    if expected is not None:
        assert TREATMENT.apply(state, event) is expected
        return
    with pytest.raises(IllegalTransition) as info:
        TREATMENT.apply(state, event)
    assert str(info.value) == f"treatment: {event.value!r} does not apply to state {state.value!r}"
    assert (info.value.machine, info.value.state, info.value.event) == ("treatment", state, event)


@pytest.mark.parametrize(("state", "event"), STEP_PAIRS, ids=_ids(STEP_PAIRS))
def test_step_transition(state: StepStatus, event: StepEvent) -> None:
    expected = STEP_TABLE.get((state, event))
    assert STEP.allows(state, event) is (expected is not None)
    if expected is not None:
        assert STEP.apply(state, event) is expected
        return
    with pytest.raises(IllegalTransition) as info:
        STEP.apply(state, event)
    assert str(info.value) == f"treatment step: {event.value!r} does not apply to state {state.value!r}"
    assert (info.value.machine, info.value.state, info.value.event) == ("treatment step", state, event)


def test_terminal_states() -> None:
    assert TREATMENT.terminal() == set()  # a new delinquency cycle can always revive a treatment
    assert STEP.terminal() == {SB}        # compliance refused it for good


# --- helpers mapping facts to events ---------------------------------------------------------------


@PROPS
@given(st.dates(), st.integers(min_value=-400, max_value=400))
def test_overdue_event_is_a_new_cycle_only_for_a_later_due_date(stored: date, shift: int) -> None:
    try:
        incoming = stored + timedelta(days=shift)
    except OverflowError:
        return
    expected = TE.NEW_CYCLE if shift > 0 else TE.OVERDUE_UPDATED
    assert overdue_event(stored_due_date=stored, incoming_due_date=incoming) is expected


@PROPS
@given(st.dates())
def test_overdue_event_without_a_stored_due_date_is_a_new_cycle(incoming: date) -> None:
    assert overdue_event(stored_due_date=None, incoming_due_date=incoming) is TE.NEW_CYCLE


@pytest.mark.parametrize(("kind", "event"), [
    ("agreed", TE.PLAN_AGREED), ("cancelled", TE.PLAN_ENDED), ("broken", TE.PLAN_ENDED),
    ("completed", TE.PLAN_COMPLETED),
])
def test_plan_event(kind: str, event: TreatmentEvent) -> None:
    assert plan_event(kind) is event


def test_plan_event_refuses_an_unknown_kind() -> None:
    with pytest.raises(KeyError):
        plan_event("renegotiated")


@pytest.mark.parametrize(("outcome", "event"), [
    ("sent", SE.SUCCEEDED), ("delivered", SE.SUCCEEDED), ("task_created", SE.SUCCEEDED),
    ("failed", SE.FAILED), ("unknown", SE.FAILED),
])
def test_outcome_event(outcome: str, event: StepEvent) -> None:
    assert outcome_event(outcome) is event


# --- properties over random event sequences --------------------------------------------------------

treatment_events = st.lists(st.sampled_from(list(TreatmentEvent)), max_size=40)
step_events = st.lists(st.sampled_from(list(StepEvent)), max_size=40)


def _run_treatment(start: TreatmentStatus, events: list[TreatmentEvent]) -> list[Transition]:
    """Apply events, skipping the illegal ones as a consumer does; the (before, event, after) steps taken."""
    state, taken = start, []
    for event in events:
        if not TREATMENT.allows(state, event):
            with pytest.raises(IllegalTransition):
                TREATMENT.apply(state, event)
            continue
        after = TREATMENT.apply(state, event)
        assert after in TreatmentStatus
        taken.append((state, event, after))
        state = after
    return taken


def _run_step(start: StepStatus, events: list[StepEvent]) -> list[Transition]:
    state, taken = start, []
    for event in events:
        if not STEP.allows(state, event):
            with pytest.raises(IllegalTransition):
                STEP.apply(state, event)
            continue
        after = STEP.apply(state, event)
        assert after in StepStatus
        taken.append((state, event, after))
        state = after
    return taken


@PROPS
@given(st.sampled_from(list(TreatmentStatus)), treatment_events)
def test_treatment_resumes_only_through_a_plan_end_and_restarts_only_on_a_new_cycle(
        start: TreatmentStatus, events: list[TreatmentEvent]) -> None:
    for before, event, after in _run_treatment(start, events):
        if before is P and after is A:
            assert event is TE.PLAN_ENDED
        if before is S and after is A:
            assert event is TE.NEW_CYCLE
        if before is P and event in (TE.OVERDUE_UPDATED, TE.NEW_CYCLE):
            assert after is P  # overdue data never unpauses


@PROPS
@given(treatment_events)
def test_a_paid_treatment_stays_stopped_until_a_new_cycle(events: list[TreatmentEvent]) -> None:
    for before, event, after in _run_treatment(S, events):
        if before is S and event is not TE.NEW_CYCLE:
            assert after is S


@PROPS
@given(treatment_events)
@example([TE.PLAN_AGREED, TE.PLAN_ENDED])
def test_a_stopped_treatment_becomes_active_only_after_a_new_cycle(events: list[TreatmentEvent]) -> None:
    for _before, event, after in _run_treatment(S, events):
        if event is TE.NEW_CYCLE:
            return
        assert after is not A


@PROPS
@given(st.sampled_from(list(StepStatus)), step_events)
def test_blocked_is_absorbing_and_never_requested_again(start: StepStatus, events: list[StepEvent]) -> None:
    blocked = start is SB
    for before, _event, after in _run_step(start, events):
        if before in STEP.terminal():
            assert after is before
        if blocked:
            assert after is SB
            assert after is not SR
        blocked = blocked or after is SB


@PROPS
@given(step_events)
def test_step_sequences_from_creation_reach_only_defined_states(events: list[StepEvent]) -> None:
    # creation is PENDING + PLANNED; from there a step is requested
    state = STEP.apply(SP, SE.PLANNED)
    assert state is SR
    taken = _run_step(state, events)
    for before, event, after in taken:
        assert STEP_TABLE[(before, event)] is after
        if after is SR:
            # requested again only by planning, the timer, or reopening a cancelled step: never from blocked,
            # done or failed
            assert before in (SP, SC)

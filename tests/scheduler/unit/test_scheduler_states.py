"""Unit tests for the treatment step lifecycle (services/scheduler/domain/states.py), as an explicit table
over every (state, event) pair and as hypothesis properties over event sequences. The treatment's status
is derived, not a machine: tests/scheduler/unit/test_standing.py."""

from __future__ import annotations

import typing
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scheduler.domain.states import NOT_REACHED, REACHED, STEP, StepEvent, StepStatus, outcome_event
from shared.contracts.events import ContactOutcomeV1
from shared.domain import IllegalTransition

PROPS = settings(max_examples=300, deadline=None, database=None)

SP, SR, SD, SF, SB, SC = (StepStatus.PENDING, StepStatus.REQUESTED, StepStatus.DONE, StepStatus.FAILED,
                          StepStatus.BLOCKED, StepStatus.CANCELLED)
SE = StepEvent

# From the StepStatus / StepEvent comments: a pending step is requested when planned or due, a requested one
# is deferred back to pending, blocked for good, done or failed; a later outcome corrects an earlier one;
# open steps (pending, requested) are cancelled when the treatment stops, and reopened when it is active again;
# an outcome is a fact about a contact already made, so it holds on a cancelled or blocked step too.
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
    (SB, SE.SUCCEEDED): SD,
    (SB, SE.FAILED): SF,
    (SC, SE.REOPENED): SR,
    (SC, SE.SUCCEEDED): SD,
    (SC, SE.FAILED): SF,
}

STEP_PAIRS = [(s, e) for s in StepStatus for e in StepEvent]


Transition = tuple[Any, Any, Any]  # (before, event, after)


def _ids(pairs: list[tuple[Any, Any]]) -> list[str]:
    return [f"{s.value}-{e.value}" for s, e in pairs]


def test_tables_cover_every_state_and_event() -> None:
    assert {s for s, _ in STEP_TABLE} == set(StepStatus)
    assert {e for _, e in STEP_TABLE} == set(StepEvent)


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
    assert STEP.terminal() == set()  # a late outcome still lands on a blocked or cancelled step


# --- helpers mapping facts to events ---------------------------------------------------------------


@pytest.mark.parametrize(("outcome", "event"), [
    ("sent", SE.SUCCEEDED), ("delivered", SE.SUCCEEDED), ("task_created", SE.SUCCEEDED),
    ("failed", SE.FAILED), ("unknown", SE.FAILED), ("revoked", SE.CANCELLED),
    # a dialer's or agent's call result: not reached is a failure, a conversation a success
    ("no_answer", SE.FAILED), ("busy", SE.FAILED), ("voicemail", SE.FAILED),
    ("connected", SE.SUCCEEDED), ("right_party_contact", SE.SUCCEEDED),
])
def test_outcome_event(outcome: str, event: StepEvent) -> None:
    assert outcome_event(outcome) is event


# --- properties over random event sequences --------------------------------------------------------

step_events = st.lists(st.sampled_from(list(StepEvent)), max_size=40)


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
@given(st.sampled_from(list(StepStatus)), step_events)
def test_blocked_is_never_requested_again(start: StepStatus, events: list[StepEvent]) -> None:
    blocked = start is SB
    for before, event, after in _run_step(start, events):
        if blocked:
            assert after is not SR and after is not SP
        if before is SB:
            assert event in (SE.SUCCEEDED, SE.FAILED)  # only an outcome of a contact already made
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


def test_every_outcome_of_the_contract_is_interpreted() -> None:
    """Each value channels.contact-outcome.v1 may carry is named as a contact that reached the customer, one that
    did not, or ``revoked``: a value added to the contract without a decision here fails this test."""
    values = set(typing.get_args(ContactOutcomeV1.model_fields["outcome"].annotation))
    assert values == REACHED | NOT_REACHED | {"revoked"}
    assert not REACHED & NOT_REACHED

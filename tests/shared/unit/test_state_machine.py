"""Unit tests for the table-driven state machine itself (shared/domain.py StateMachine, IllegalTransition)."""

from __future__ import annotations

from enum import StrEnum

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain import DomainError, IllegalTransition, StateMachine

PROPS = settings(max_examples=200, deadline=None, database=None)


class Light(StrEnum):
    OFF = "off"
    ON = "on"
    BROKEN = "broken"


class Press(StrEnum):
    TOGGLE = "toggle"
    SMASH = "smash"
    NOOP = "noop"


LAMP = StateMachine[Light, Press]("lamp", {
    Light.OFF: {Press.TOGGLE: Light.ON, Press.SMASH: Light.BROKEN},
    Light.ON: {Press.TOGGLE: Light.OFF, Press.SMASH: Light.BROKEN, Press.NOOP: Light.ON},
    Light.BROKEN: {Press.NOOP: Light.BROKEN},  # only a self-loop: still terminal
})

# The lamp's table written out independently: (state, event) -> next state; every other pair is illegal.
EXPECTED = {
    (Light.OFF, Press.TOGGLE): Light.ON,
    (Light.OFF, Press.SMASH): Light.BROKEN,
    (Light.ON, Press.TOGGLE): Light.OFF,
    (Light.ON, Press.SMASH): Light.BROKEN,
    (Light.ON, Press.NOOP): Light.ON,
    (Light.BROKEN, Press.NOOP): Light.BROKEN,
}
PAIRS = [(s, e) for s in Light for e in Press]


@pytest.mark.parametrize(("state", "event"), PAIRS, ids=[f"{s}-{e}" for s, e in PAIRS])
def test_apply_and_allows_agree_with_the_table(state: Light, event: Press) -> None:
    expected = EXPECTED.get((state, event))
    assert LAMP.allows(state, event) is (expected is not None)
    if expected is not None:
        assert LAMP.apply(state, event) is expected
    else:
        with pytest.raises(IllegalTransition) as info:
            LAMP.apply(state, event)
        assert (info.value.machine, info.value.state, info.value.event) == ("lamp", state, event)


def test_illegal_transition_message_names_machine_event_and_state() -> None:
    with pytest.raises(IllegalTransition) as info:
        LAMP.apply(Light.OFF, Press.NOOP)
    assert str(info.value) == "lamp: 'noop' does not apply to state 'off'"


def test_illegal_transition_is_a_409_domain_error_without_a_chained_key_error() -> None:
    with pytest.raises(IllegalTransition) as info:
        LAMP.apply(Light.BROKEN, Press.TOGGLE)
    assert isinstance(info.value, DomainError)
    assert info.value.status == 409
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_terminal_states_are_those_no_event_leaves() -> None:
    assert LAMP.terminal() == {Light.BROKEN}


def test_a_state_with_no_edges_is_terminal_and_allows_nothing() -> None:
    machine = StateMachine[Light, Press]("m", {Light.OFF: {Press.TOGGLE: Light.ON}, Light.ON: {}})
    assert machine.terminal() == {Light.ON}
    assert not any(machine.allows(Light.ON, e) for e in Press)


def test_a_state_missing_from_the_table_allows_nothing_and_apply_raises() -> None:
    machine = StateMachine[Light, Press]("m", {Light.OFF: {Press.TOGGLE: Light.ON}})
    assert not machine.allows(Light.BROKEN, Press.TOGGLE)
    with pytest.raises(IllegalTransition, match=r"^m: 'toggle' does not apply to state 'broken'$"):
        machine.apply(Light.BROKEN, Press.TOGGLE)


def test_a_target_state_without_a_row_is_terminal() -> None:
    machine = StateMachine[Light, Press]("m", {Light.OFF: {Press.TOGGLE: Light.ON}})
    assert Light.ON in machine.terminal()


def test_machine_keeps_its_name_and_table() -> None:
    assert LAMP.name == "lamp"
    assert LAMP.transitions[Light.OFF][Press.TOGGLE] is Light.ON


@PROPS
@given(st.lists(st.sampled_from(list(Press)), max_size=30))
def test_random_sequences_stay_within_the_table_and_terminal_states_absorb(events: list[Press]) -> None:
    state = Light.OFF
    for event in events:
        before = state
        if LAMP.allows(state, event):
            state = LAMP.apply(state, event)
        else:
            with pytest.raises(IllegalTransition):
                LAMP.apply(state, event)
        assert state in Light
        if before in LAMP.terminal():
            assert state is before


def test_docs_show_every_state_machine_as_the_code_has_it() -> None:
    from pathlib import Path

    from services.channels.domain.states import ATTEMPT
    from services.plans.domain.states import INSTALMENT, PLAN
    from services.scheduler.domain.states import STEP

    doc = (Path(__file__).resolve().parents[3] / "docs" / "domain.md").read_text(encoding="utf-8")
    for machine in (STEP, ATTEMPT, PLAN, INSTALMENT):
        assert machine.describe() in doc, f"docs/domain.md: the {machine.name} table is out of date"

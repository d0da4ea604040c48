"""Unit tests for the contact attempt lifecycle (services/channels/domain/states.py), as an explicit table
over every (state, event) pair and as hypothesis properties: no sequence of events contacts twice."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.channels.domain.states import (
    ATTEMPT,
    QUEUED_CHANNELS,
    AttemptEvent,
    AttemptStatus,
    creation_event,
    retry_delay_s,
)
from shared.contracts.events import Channel
from shared.domain import IllegalTransition

PROPS = settings(max_examples=300, deadline=None, database=None)

S, E = AttemptStatus, AttemptEvent

# From the module docstring's diagram and the enum comments, not read from ATTEMPT.transitions:
#   (new) --queued--> sending --claimed--> dispatching --accepted--> sent --delivered--> delivered
#   (new) --task--> task_created
#   dispatching --retry / resend--> sending;  --refused / gave_up--> failed;  --interrupted--> unknown
#   a receipt may overtake our own record of the send: dispatching --delivered|undelivered--> delivered|failed
#   sent --undelivered--> failed (a failed receipt)
#   sent --expired--> unknown (no final status within the give-up age); unknown --delivered|undelivered--> ...
ATTEMPT_TABLE: dict[tuple[AttemptStatus, AttemptEvent], AttemptStatus] = {
    (S.NEW, E.QUEUED): S.SENDING,
    (S.NEW, E.TASK): S.TASK_CREATED,
    (S.SENDING, E.CLAIMED): S.DISPATCHING,
    (S.SENDING, E.REVOKED): S.REVOKED,  # a hold came before the dispatcher took it
    (S.DISPATCHING, E.ACCEPTED): S.SENT,
    (S.DISPATCHING, E.RETRY): S.SENDING,
    (S.DISPATCHING, E.RESEND): S.SENDING,
    (S.DISPATCHING, E.REFUSED): S.FAILED,
    (S.DISPATCHING, E.GAVE_UP): S.FAILED,
    (S.DISPATCHING, E.INTERRUPTED): S.UNKNOWN,
    (S.UNKNOWN, E.ACCEPTED): S.SENT,  # an interrupted e-mail whose send then reported success
    (S.DISPATCHING, E.DELIVERED): S.DELIVERED,
    (S.DISPATCHING, E.UNDELIVERED): S.FAILED,
    (S.SENT, E.DELIVERED): S.DELIVERED,
    (S.SENT, E.UNDELIVERED): S.FAILED,
    (S.SENT, E.EXPIRED): S.UNKNOWN,
    (S.UNKNOWN, E.DELIVERED): S.DELIVERED,  # the final status of an SMS we had given up on came after all
    (S.UNKNOWN, E.UNDELIVERED): S.FAILED,
}
# Reached once the provider took it, refused it for good, it may have gone out, or an agent has it.
SETTLED = frozenset({S.SENT, S.DELIVERED, S.FAILED, S.UNKNOWN, S.TASK_CREATED, S.REVOKED})
TERMINAL = {S.DELIVERED, S.FAILED, S.TASK_CREATED, S.REVOKED}
PAIRS = [(s, e) for s in AttemptStatus for e in AttemptEvent]


def test_table_covers_every_event() -> None:
    assert {e for _, e in ATTEMPT_TABLE} == set(AttemptEvent)


@pytest.mark.parametrize(("state", "event"), PAIRS, ids=[f"{s.value}-{e.value}" for s, e in PAIRS])
def test_attempt_transition(state: AttemptStatus, event: AttemptEvent) -> None:
    expected = ATTEMPT_TABLE.get((state, event))
    assert ATTEMPT.allows(state, event) is (expected is not None)
    if expected is not None:
        assert ATTEMPT.apply(state, event) is expected
        return
    with pytest.raises(IllegalTransition) as info:
        ATTEMPT.apply(state, event)
    assert str(info.value) == f"contact attempt: {event.value!r} does not apply to state {state.value!r}"
    assert (info.value.machine, info.value.state, info.value.event) == ("contact attempt", state, event)


def test_terminal_states() -> None:
    assert ATTEMPT.terminal() == TERMINAL


@pytest.mark.parametrize(("channel", "event"), [
    (Channel.SMS, E.QUEUED), (Channel.EMAIL, E.QUEUED), (Channel.CALL, E.TASK), (Channel.FIELD, E.TASK),
])
def test_creation_event(channel: Channel, event: AttemptEvent) -> None:
    assert creation_event(channel.value) is event
    assert ATTEMPT.apply(S.NEW, event) is (S.SENDING if channel.value in QUEUED_CHANNELS else S.TASK_CREATED)


@pytest.mark.parametrize(("tries", "delay"), [
    (0, 1.0), (1, 2.0), (2, 4.0), (5, 32.0), (8, 256.0), (9, 300.0), (20, 300.0), (100, 300.0),
])
def test_retry_delay_defaults(tries: int, delay: float) -> None:
    result = retry_delay_s(tries)
    assert isinstance(result, float)
    assert result == delay


def test_retry_delay_with_custom_base_and_cap() -> None:
    assert [retry_delay_s(t, base_s=3.0, max_s=50.0) for t in range(5)] == [1.0, 3.0, 9.0, 27.0, 50.0]
    assert retry_delay_s(0, base_s=2.0, max_s=0.5) == 0.5


# Within the bounds the channels settings allow: CHANNELS_RETRY_BACKOFF_BASE_S in [1, 60],
# CHANNELS_RETRY_BACKOFF_MAX_S in (0, 86400], CHANNELS_MAX_SEND_TRIES <= 100 (tries may be one more).
bases = st.floats(min_value=1.0, max_value=60.0, allow_nan=False)
caps = st.floats(min_value=0.001, max_value=86_400.0, allow_nan=False)
tries = st.integers(min_value=0, max_value=101)


@PROPS
@given(bases, caps, tries, tries)
def test_retry_delay_is_monotone_and_capped(base: float, cap: float, a: int, b: int) -> None:
    lo, hi = sorted((a, b))
    d_lo, d_hi = retry_delay_s(lo, base_s=base, max_s=cap), retry_delay_s(hi, base_s=base, max_s=cap)
    assert 0 < d_lo <= d_hi <= cap


@PROPS
@given(bases, caps, tries)
def test_retry_delay_is_base_to_the_tries_below_the_cap(base: float, cap: float, n: int) -> None:
    delay = retry_delay_s(n, base_s=base, max_s=cap)
    assert delay == min(base ** n, cap)


attempt_events = st.lists(st.sampled_from(list(AttemptEvent)), max_size=40)


@PROPS
@given(attempt_events)
def test_no_sequence_sends_twice(events: list[AttemptEvent]) -> None:
    """Once the provider took it (or may have), refused it, or an agent has it, it is never queued again."""
    state, settled = S.NEW, False
    for event in events:
        before = state
        if not ATTEMPT.allows(state, event):
            with pytest.raises(IllegalTransition):
                ATTEMPT.apply(state, event)
            continue
        state = ATTEMPT.apply(state, event)
        assert state in AttemptStatus and state is not S.NEW
        assert ATTEMPT_TABLE[(before, event)] is state
        if settled:
            assert state not in (S.SENDING, S.DISPATCHING)
            assert state in SETTLED
        if before in TERMINAL:
            assert state is before
        settled = settled or state in SETTLED


@PROPS
@given(st.sampled_from(sorted(TERMINAL)), attempt_events)
def test_terminal_attempts_are_absorbing(start: AttemptStatus, events: list[AttemptEvent]) -> None:
    for event in events:
        assert not ATTEMPT.allows(start, event)
        with pytest.raises(IllegalTransition):
            ATTEMPT.apply(start, event)


@PROPS
@given(st.sampled_from(list(Channel)), attempt_events)
def test_agent_channels_never_reach_the_dispatcher(channel: Channel, events: list[AttemptEvent]) -> None:
    state = ATTEMPT.apply(S.NEW, creation_event(channel.value))
    for event in events:
        if ATTEMPT.allows(state, event):
            state = ATTEMPT.apply(state, event)
    if channel.value not in QUEUED_CHANNELS:
        assert state is S.TASK_CREATED

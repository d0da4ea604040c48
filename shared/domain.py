"""Plumbing for the services' pure domain code: domain errors and table-driven state machines."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Generic, TypeVar

StateT = TypeVar("StateT", bound=StrEnum)
EventT = TypeVar("EventT", bound=StrEnum)


class DomainError(Exception):
    """A request or event the domain refuses; entry points map it to problem details or ignore it."""

    status = 409
    title = "Conflict"


class Refused(DomainError):
    """A document (a policy, a strategy, a scorecard) that cannot be used, with every reason: nothing is stored.
    The problem details list each reason in ``errors`` (shared/http.py)."""

    status = 422
    title = "Refused"
    loc: tuple[str, ...] = ("body",)  # where in the request, as the problem's errors name it
    kind = "refused"                  # the errors' ``type``

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


class NotFound(DomainError):
    """The thing asked for does not exist in the caller's tenant."""

    status = 404
    title = "Not found"


class IllegalTransition(DomainError):
    """An event that does not apply to an entity in its current state."""

    def __init__(self, machine: str, state: StrEnum, event: StrEnum) -> None:
        super().__init__(f"{machine}: {event.value!r} does not apply to state {state.value!r}")
        self.machine, self.state, self.event = machine, state, event


class StateMachine(Generic[StateT, EventT]):
    """A transition table: ``apply(state, event)`` returns the next state or raises IllegalTransition."""

    def __init__(self, name: str, transitions: Mapping[StateT, Mapping[EventT, StateT]]) -> None:
        self.name = name
        self.transitions = transitions

    def apply(self, state: StateT, event: EventT) -> StateT:
        """The state after ``event``; raises :class:`IllegalTransition` if the table has no such edge."""
        try:
            return self.transitions[state][event]
        except KeyError:
            raise IllegalTransition(self.name, state, event) from None

    def allows(self, state: StateT, event: EventT) -> bool:
        """Whether ``event`` applies in ``state``."""
        return event in self.transitions.get(state, {})

    def describe(self) -> str:
        """The transition table as Markdown (state, event, next state), for docs/domain.md."""
        rows = [f"| `{state.value}` | `{event.value}` | `{target.value}` |"
                for state, edges in self.transitions.items() for event, target in edges.items()]
        return "\n".join([f"| {self.name} state | event | next state |", "|---|---|---|", *rows])

    def terminal(self) -> set[StateT]:
        """States no event leaves."""
        states = set(self.transitions) | {t for edges in self.transitions.values() for t in edges.values()}
        return {s for s in states if all(t == s for t in self.transitions.get(s, {}).values())}

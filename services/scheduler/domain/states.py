"""The treatment's and the treatment step's lifecycles as transition tables.

The use cases in ``services/scheduler/service.py`` apply events here and store the result; SQL never
decides a status. An event with no edge raises :class:`shared.domain.IllegalTransition`, which a
consumer use case treats as "not applicable" (a late or repeated fact) and a route as a 409.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from shared.domain import StateMachine


class TreatmentStatus(StrEnum):
    """Where an account's treatment stands."""

    ACTIVE = "active"    # steps are planned and requested
    PAUSED = "paused"    # an agreed plan: no contact until it ends
    STOPPED = "stopped"  # paid, or the plan completed: no contact this delinquency cycle


class TreatmentEvent(StrEnum):
    """What can happen to a treatment."""

    OVERDUE_UPDATED = "overdue_updated"  # new facts about the same delinquency cycle
    NEW_CYCLE = "new_cycle"              # a later due date: a new delinquency
    PLAN_AGREED = "plan_agreed"
    PLAN_ENDED = "plan_ended"            # cancelled or broken
    PLAN_COMPLETED = "plan_completed"
    PAID_IN_FULL = "paid_in_full"


_A, _P, _S = TreatmentStatus.ACTIVE, TreatmentStatus.PAUSED, TreatmentStatus.STOPPED
_E = TreatmentEvent
TREATMENT = StateMachine[TreatmentStatus, TreatmentEvent]("treatment", {
    _A: {_E.OVERDUE_UPDATED: _A, _E.NEW_CYCLE: _A, _E.PLAN_AGREED: _P, _E.PLAN_ENDED: _A,
         _E.PLAN_COMPLETED: _S, _E.PAID_IN_FULL: _S},
    # new overdue data never unpauses: only the plan's end does
    _P: {_E.OVERDUE_UPDATED: _P, _E.NEW_CYCLE: _P, _E.PLAN_AGREED: _P, _E.PLAN_ENDED: _A,
         _E.PLAN_COMPLETED: _S, _E.PAID_IN_FULL: _S},
    # a stopped account comes back only for a new delinquency. A plan event for the cycle it closed does
    # not apply: pausing would let the plan's cancellation revive contact with a customer who paid, and
    # "paid, then plan agreed" would end elsewhere than "plan agreed, then paid" (both end stopped).
    _S: {_E.NEW_CYCLE: _A, _E.PLAN_COMPLETED: _S, _E.PAID_IN_FULL: _S},
})


def overdue_event(*, stored_due_date: date | None, incoming_due_date: date) -> TreatmentEvent:
    """Which treatment event an overdue update is: a later due date starts a new cycle."""
    if stored_due_date is None or incoming_due_date > stored_due_date:
        return TreatmentEvent.NEW_CYCLE
    return TreatmentEvent.OVERDUE_UPDATED


def plan_event(kind: str) -> TreatmentEvent:
    """The treatment event for a plan event's kind (agreed, cancelled, broken, completed)."""
    return {"agreed": TreatmentEvent.PLAN_AGREED, "cancelled": TreatmentEvent.PLAN_ENDED,
            "broken": TreatmentEvent.PLAN_ENDED, "completed": TreatmentEvent.PLAN_COMPLETED}[kind]


class StepStatus(StrEnum):
    """Where a treatment step stands."""

    PENDING = "pending"      # waiting for due_at (a durable timer)
    REQUESTED = "requested"  # a contact request is on its way to compliance
    DONE = "done"            # sent, or handed to an agent
    FAILED = "failed"        # the channel failed
    BLOCKED = "blocked"      # compliance refused it for good
    CANCELLED = "cancelled"  # the treatment stopped or paused


class StepEvent(StrEnum):
    """What can happen to a treatment step."""

    PLANNED = "planned"      # the timeline calls for the step now (creation is PENDING + PLANNED)
    DUE = "due"              # the timer claimed it
    DEFERRED = "deferred"    # compliance: not now, retry at a time
    BLOCKED = "blocked"      # compliance: never
    SUCCEEDED = "succeeded"  # outcome: sent, delivered, task created
    FAILED = "failed"        # outcome: failed or unknown
    CANCELLED = "cancelled"  # the treatment is no longer active
    REOPENED = "reopened"    # the treatment is active again


_SP, _SR, _SD, _SF, _SB, _SC = (StepStatus.PENDING, StepStatus.REQUESTED, StepStatus.DONE, StepStatus.FAILED,
                                StepStatus.BLOCKED, StepStatus.CANCELLED)
_T = StepEvent
STEP = StateMachine[StepStatus, StepEvent]("treatment step", {
    _SP: {_T.PLANNED: _SR, _T.DUE: _SR, _T.CANCELLED: _SC},
    _SR: {_T.DEFERRED: _SP, _T.BLOCKED: _SB, _T.SUCCEEDED: _SD, _T.FAILED: _SF, _T.CANCELLED: _SC},
    # a later outcome corrects an earlier one (a failed receipt after "sent", a resend that worked)
    _SD: {_T.SUCCEEDED: _SD, _T.FAILED: _SF},
    _SF: {_T.SUCCEEDED: _SD, _T.FAILED: _SF},
    _SB: {},
    _SC: {_T.REOPENED: _SR},
})


def outcome_event(outcome: str) -> StepEvent:
    """The step event for a channel outcome."""
    return StepEvent.FAILED if outcome in ("failed", "unknown") else StepEvent.SUCCEEDED

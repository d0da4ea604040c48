"""The treatment's statuses and the treatment step's lifecycle as a transition table.

A treatment's status is derived from the facts kept about its account (``domain/standing.py``), so the
order they arrive in cannot change it. A step's status follows the table below: the use cases in
``services/scheduler/service.py`` apply events to it and store the result; SQL never decides a status.
An event with no edge raises :class:`shared.domain.IllegalTransition`, which a consumer use case treats
as "not applicable" (a late or repeated fact).
"""

from __future__ import annotations

from enum import StrEnum

from shared.domain import StateMachine


class TreatmentStatus(StrEnum):
    """Where an account's treatment stands."""

    ACTIVE = "active"    # steps are planned and requested
    PAUSED = "paused"    # an agreed plan: no contact until it ends
    STOPPED = "stopped"  # nothing overdue any more: no contact until a new overdue notice


class StepStatus(StrEnum):
    """Where a treatment step stands."""

    PENDING = "pending"      # waiting for due_at (a durable timer)
    REQUESTED = "requested"  # a contact request is on its way to compliance
    DONE = "done"            # sent, handed to an agent, or the call reached the customer
    FAILED = "failed"        # the channel failed, or the call did not reach the customer
    BLOCKED = "blocked"      # compliance refused it for good
    CANCELLED = "cancelled"  # the treatment stopped or paused


class StepEvent(StrEnum):
    """What can happen to a treatment step."""

    PLANNED = "planned"      # the timeline calls for the step now (creation is PENDING + PLANNED)
    DUE = "due"              # the timer claimed it
    DEFERRED = "deferred"    # compliance: not now, retry at a time
    BLOCKED = "blocked"      # compliance: never
    SUCCEEDED = "succeeded"  # outcome: sent, delivered, task created; a call connected, right-party contact
    FAILED = "failed"        # outcome: failed or unknown; a call with no answer, busy, voicemail
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
    # an outcome is a fact about a contact already made: it holds whatever became of the step since (a
    # pause cancelled it, or compliance refused the attempt that reopened it)
    _SB: {_T.SUCCEEDED: _SD, _T.FAILED: _SF},
    _SC: {_T.REOPENED: _SR, _T.SUCCEEDED: _SD, _T.FAILED: _SF},
})


# What each outcome of channels.contact-outcome.v1 means for the step (docs/events.md). A dialer's or agent's call
# result is an attempt made: one that did not reach the customer (no answer, busy, voicemail) is a failure like
# ``failed``, one that did (connected, right-party contact) a success like ``delivered``.
REACHED = frozenset({"sent", "delivered", "task_created", "connected", "right_party_contact"})
NOT_REACHED = frozenset({"failed", "unknown", "no_answer", "busy", "voicemail"})


def outcome_event(outcome: str) -> StepEvent:
    """The step event for a contact outcome: a revoked contact (a hold came first) was never made; an outcome
    this table does not know (none passes the contract) counts as a failure, never as a success."""
    if outcome == "revoked":
        return StepEvent.CANCELLED
    return StepEvent.SUCCEEDED if outcome in REACHED else StepEvent.FAILED

"""A repayment plan's and an instalment's lifecycles as transition tables.

The plan: agreed until it is cancelled (by a partner or agent), paid off (completed) or broken. A plan agreed
from a quote beyond its maker's authority waits for its approvals first (pending_approval): approved, it is
agreed (and only then announced); rejected, it ends there; it may be cancelled while it waits.
An instalment: due until payments cover it (partly paid on the way); its status is derived from
what was paid, and moves only forward.
"""

from __future__ import annotations

from enum import StrEnum

from shared.domain import StateMachine


class PlanStatus(StrEnum):
    """Where a repayment plan stands."""

    AGREED = "agreed"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    BROKEN = "broken"
    PENDING_APPROVAL = "pending_approval"  # waits for a supervisor's or a co-lender's approval
    REJECTED = "rejected"                  # an approver rejected it: never agreed


class PlanEvent(StrEnum):
    """What can happen to a repayment plan."""

    CANCEL = "cancel"
    PAID_OFF = "paid_off"
    BREAK = "break"  # missed instalments beyond the grace period (not yet detected automatically)
    APPROVE = "approve"  # the last approval it waited for came in
    REJECT = "reject"    # an approver rejected it


PLAN = StateMachine[PlanStatus, PlanEvent]("plan", {
    PlanStatus.AGREED: {PlanEvent.CANCEL: PlanStatus.CANCELLED, PlanEvent.PAID_OFF: PlanStatus.COMPLETED,
                        PlanEvent.BREAK: PlanStatus.BROKEN},
    PlanStatus.CANCELLED: {},
    PlanStatus.COMPLETED: {},
    PlanStatus.BROKEN: {},
    PlanStatus.PENDING_APPROVAL: {PlanEvent.APPROVE: PlanStatus.AGREED, PlanEvent.REJECT: PlanStatus.REJECTED,
                                  PlanEvent.CANCEL: PlanStatus.CANCELLED},
    PlanStatus.REJECTED: {},
})


class InstalmentStatus(StrEnum):
    """How much of an instalment is paid."""

    DUE = "due"
    PARTLY_PAID = "partly_paid"
    PAID = "paid"


class InstalmentEvent(StrEnum):
    """A payment allocated to an instalment."""

    PART_PAYMENT = "part_payment"  # a payment that leaves something owed
    SETTLED = "settled"            # a payment that covers what was owed


INSTALMENT = StateMachine[InstalmentStatus, InstalmentEvent]("instalment", {
    InstalmentStatus.DUE: {InstalmentEvent.PART_PAYMENT: InstalmentStatus.PARTLY_PAID,
                           InstalmentEvent.SETTLED: InstalmentStatus.PAID},
    InstalmentStatus.PARTLY_PAID: {InstalmentEvent.PART_PAYMENT: InstalmentStatus.PARTLY_PAID,
                                   InstalmentEvent.SETTLED: InstalmentStatus.PAID},
    InstalmentStatus.PAID: {},
})


def instalment_status(*, amount_minor: int, paid_minor: int) -> InstalmentStatus:
    """An instalment's status from what was paid against it."""
    if paid_minor >= amount_minor:
        return InstalmentStatus.PAID
    return InstalmentStatus.PARTLY_PAID if paid_minor > 0 else InstalmentStatus.DUE


def payment_event(*, owed_minor: int, applied_minor: int) -> InstalmentEvent:
    """The instalment event for ``applied_minor`` paid against ``owed_minor``."""
    return InstalmentEvent.SETTLED if applied_minor >= owed_minor else InstalmentEvent.PART_PAYMENT

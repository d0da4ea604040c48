"""Where a treatment stands, derived from every fact kept about the account, never from the order they
arrived in (docs/events.md, "Keys and ordering").

Pure logic. The scheduler keeps the facts: the newest overdue snapshot (segmentation's classification of
core banking's notice, with its event time ``as_of``), every payment (once per payment id, even before
the account is known), the last word of every plan, the newest outcome of every contact. From them:

- the amount overdue is the snapshot's amount less the payments booked after it (those before it are
  already in it), in the snapshot's currency, never below zero;
- nothing overdue: ``stopped``; else an agreed plan not yet ended, or a promise to pay still open
  (``domain/promises.py``): ``paused``; else ``active``.

A completed plan does not stop the treatment on its own: only the money does. A plan that ended with
arrears left (a plan that did not cover them, interest since) leaves the treatment active.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from services.scheduler.domain.states import TreatmentStatus
from shared.snapshots import PaymentFact, SnapshotTime, is_newer_snapshot, overdue_now, plan_supersedes

__all__ = [
    "PaymentFact",
    "SnapshotTime",
    "Standing",
    "is_newer_snapshot",
    "is_open",
    "outcome_supersedes",
    "overdue_now",
    "plan_supersedes",
    "standing",
]

PlanKind = Literal["agreed", "cancelled", "completed", "broken"]
OutcomeKind = Literal["sent", "delivered", "failed", "task_created", "unknown", "revoked", "no_answer", "busy",
                      "voicemail", "connected", "right_party_contact"]


@dataclass(frozen=True, slots=True)
class Standing:
    """A treatment's derived status, the amount overdue now, and why (for people)."""

    status: TreatmentStatus
    overdue_minor: int
    reason: str


def standing(*, overdue_minor: int, open_plans: Sequence[str], active_reason: str,
             open_promises: Sequence[str] = ()) -> Standing:
    """Nothing overdue: stopped. An agreed plan not yet ended, or a promise to pay still open: paused (the plan
    first). Otherwise active."""
    if overdue_minor <= 0:
        return Standing(TreatmentStatus.STOPPED, 0, "paid in full")
    if open_plans:
        return Standing(TreatmentStatus.PAUSED, overdue_minor, f"plan {min(open_plans)} agreed")
    if open_promises:
        return Standing(TreatmentStatus.PAUSED, overdue_minor, min(open_promises))
    return Standing(TreatmentStatus.ACTIVE, overdue_minor, active_reason)


def is_open(kind: str) -> bool:
    """An agreed plan that has not ended pauses its account's treatment."""
    return kind == "agreed"


# A total order of every outcome (distinct ranks), so equal times never leave the choice to the arrival order:
# what did not reach the customer over what did, the more final over the less (a dialer's call results sit
# beside the provider's: a conversation after ``delivered``, an unanswered call before ``failed``).
_OUTCOME_RANK = {"revoked": 0, "sent": 1, "task_created": 2, "delivered": 3, "connected": 4,
                 "right_party_contact": 5, "unknown": 6, "voicemail": 7, "busy": 8, "no_answer": 9, "failed": 10}


def _rank(kind: str) -> tuple[int, str]:
    # an outcome outside the table (none passes the contract) sorts before every known one, then by name
    return (_OUTCOME_RANK.get(kind, -1), kind)


def outcome_supersedes(*, stored: tuple[str, datetime] | None, incoming: tuple[str, datetime]) -> bool:
    """Whether a contact outcome replaces the stored one: the later ``occurred_at`` wins; at equal times
    the more final (failed over a call not answered over unknown over a conversation over delivered over
    sent), so arrival order never decides."""
    if stored is None:
        return True
    (old_kind, old_at), (new_kind, new_at) = stored, incoming
    return (new_at, _rank(new_kind)) > (old_at, _rank(old_kind))

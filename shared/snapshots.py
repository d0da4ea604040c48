"""The ordering rule every consumer of overdue notices and payments follows (docs/events.md, "Keys and
ordering"): an overdue notice is a snapshot of the account at its event time; the newest wins; payments
booked strictly after it are deducted from it, those before it are already in it.

Pure logic, shared so the scheduler, plans and segmentation cannot disagree about which snapshot is the
newest or what is owed now.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True, slots=True)
class SnapshotTime:
    """What orders two overdue snapshots of one account: the event time, then (for equal times) the later
    due date, the higher DPD and the larger amount, so equal times cannot make the result depend on order."""

    as_of: datetime
    due_date: date
    days_past_due: int
    overdue_minor: int

    def key(self) -> tuple[datetime, date, int, int]:
        return self.as_of, self.due_date, self.days_past_due, self.overdue_minor


def is_newer_snapshot(incoming: SnapshotTime, stored: SnapshotTime | None) -> bool:
    """True when ``incoming`` replaces ``stored`` (an equal one is a repeat and changes nothing)."""
    return stored is None or incoming.key() > stored.key()


@dataclass(frozen=True, slots=True)
class PaymentFact:
    """A payment kept by a consumer. ``paid_at`` or ``currency`` may be None for payments a service kept
    before it recorded them (already deducted then): those are never counted again."""

    amount_minor: int
    currency: str | None
    paid_at: datetime | None


def overdue_now(*, reported_minor: int, currency: str, as_of: datetime, payments: Iterable[PaymentFact]) -> int:
    """The snapshot's amount less the payments in its currency booked strictly after it, at least 0."""
    paid = sum(p.amount_minor for p in payments
               if p.paid_at is not None and p.currency == currency and p.paid_at > as_of)
    return max(reported_minor - paid, 0)


_PLAN_RANK = {"agreed": 0, "completed": 1, "cancelled": 2, "broken": 3}


def plan_supersedes(*, stored: tuple[str, datetime] | None, incoming: tuple[str, datetime]) -> bool:
    """Whether a plan event (kind, occurred_at) replaces the plan's stored last word. An end (completed,
    cancelled, broken) beats ``agreed`` whatever the order; between two ends the later one wins (equal
    times: the rank), so every consumer of plan events keeps the same last word."""
    if stored is None:
        return True
    (old_kind, old_at), (new_kind, new_at) = stored, incoming
    if (old_kind == "agreed") != (new_kind == "agreed"):
        return old_kind == "agreed"
    return (new_at, _PLAN_RANK[new_kind]) > (old_at, _PLAN_RANK[old_kind])

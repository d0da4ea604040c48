"""What plans knows about an account, derived from the facts it keeps (docs/events.md, "Keys and ordering").

Pure logic. Plans keeps the newest overdue snapshot of each account (core banking's notice, with its event
time ``as_of``) and every payment once (even before the account is known). From them:

- a snapshot replaces the stored one only when it is newer; an older one arriving late changes nothing;
- the amount overdue now is the snapshot's amount less the payments in its currency booked strictly after
  it (those booked before it are already in it), never below zero;
- a plan must cover that amount: agreeing less would waive the rest, and waivers need an approval, which
  is not supported yet.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from shared.domain import DomainError
from shared.money import format_amount


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
    """A payment kept by plans: its amount, currency and when it was booked."""

    amount_minor: int
    currency: str
    paid_at: datetime


def overdue_now(*, reported_minor: int, currency: str, as_of: datetime, payments: Iterable[PaymentFact]) -> int:
    """The snapshot's amount less the payments in its currency booked strictly after it, at least 0."""
    paid = sum(p.amount_minor for p in payments if p.currency == currency and p.paid_at > as_of)
    return max(reported_minor - paid, 0)


class PlanDoesNotCover(DomainError):
    """A plan whose total is below what the account owes now: agreeing it would be an unapproved waiver."""

    status = 422
    title = "Plan does not cover the overdue amount"


def require_cover(*, total_minor: int, overdue_minor: int, currency: str) -> None:
    """Refuse a plan that totals less than the amount overdue (at or above is fine)."""
    if total_minor < overdue_minor:
        raise PlanDoesNotCover(
            f"a plan must cover the {format_amount(overdue_minor, currency)} {currency} overdue; this one totals "
            f"{format_amount(total_minor, currency)} {currency}; waivers need an approval, which is not supported yet")

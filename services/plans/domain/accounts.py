"""What plans knows about an account, derived from the facts it keeps (docs/events.md, "Keys and ordering").

Pure logic. Plans keeps the newest overdue snapshot of each account (core banking's notice, with its event
time ``as_of``) and every payment once (even before the account is known). From them:

- a snapshot replaces the stored one only when it is newer; an older one arriving late changes nothing;
- the amount overdue now is the snapshot's amount less the payments in its currency booked strictly after
  it (those booked before it are already in it), never below zero;
- a plan must cover that amount: agreeing less would waive the rest, and waivers need an approval: they are
  agreed from a quote's offer (services/plans/negotiation.py).
"""

from __future__ import annotations

from shared.domain import DomainError
from shared.money import format_amount
from shared.snapshots import PaymentFact, SnapshotTime, is_newer_snapshot, overdue_now

__all__ = ["PaymentFact", "PlanDoesNotCover", "SnapshotTime", "is_newer_snapshot", "overdue_now", "require_cover"]


class PlanDoesNotCover(DomainError):
    """A plan whose total is below what the account owes now: agreeing it would be an unapproved waiver."""

    status = 422
    title = "Plan does not cover the overdue amount"


def require_cover(*, total_minor: int, overdue_minor: int, currency: str) -> None:
    """Refuse a plan that totals less than the amount overdue (at or above is fine)."""
    if total_minor < overdue_minor:
        raise PlanDoesNotCover(
            f"a plan must cover the {format_amount(overdue_minor, currency)} {currency} overdue; this one totals "
            f"{format_amount(total_minor, currency)} {currency}; waivers need an approval: ask for a quote "
            "(POST /v1/accounts/{account_id}/quotes) and agree one of its offers")

"""An account's collection status, derived from the facts kept about it (pure; docs/events.md, "Keys and
ordering").

An overdue notice is a snapshot of the account at its event time (``as_of``): the newest snapshot wins,
an older one arriving late changes nothing. Payments are kept once each, even before the account is
known. The account's balances are the snapshot's reported amounts less the payments in its currency
booked strictly after it (those before it, or at the same instant, are already in it), never below
zero; nothing overdue any more cures it. Whatever order the facts arrive in, the result is the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum


class AccountStatus(StrEnum):
    """An account's collection status."""

    OVERDUE = "overdue"
    DUE = "due"      # an instalment announced before its due date (core.instalment-due.v1), not yet paid
    CURED = "cured"  # the overdue (or due) amount was paid


@dataclass(frozen=True, slots=True)
class Balances:
    """An account's balances and status after a payment."""

    overdue_minor: int
    outstanding_minor: int
    status: AccountStatus


def after_payment(*, overdue_minor: int, outstanding_minor: int, status: AccountStatus,
                  amount_minor: int) -> Balances:
    """Balances after a payment (never below zero); clearing the overdue amount cures the account."""
    overdue = max(overdue_minor - amount_minor, 0)
    return Balances(overdue, max(outstanding_minor - amount_minor, 0),
                    AccountStatus.CURED if overdue == 0 else status)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What orders two overdue snapshots of one account: the event time, then (for equal times) the later
    due date, the higher DPD and the larger amounts, so equal times cannot make the result depend on the
    arrival order. The scheduler orders the snapshots it is sent the same way."""

    as_of: datetime
    due_date: date
    days_past_due: int
    overdue_minor: int
    outstanding_minor: int

    def key(self) -> tuple[datetime, date, int, int, int]:
        return self.as_of, self.due_date, self.days_past_due, self.overdue_minor, self.outstanding_minor


def supersedes(incoming: Snapshot, stored: Snapshot | None) -> bool:
    """True when ``incoming`` replaces ``stored``: it is newer. An older snapshot changes nothing, and an
    equal one is a duplicate (nothing stored, nothing announced again)."""
    return stored is None or incoming.key() > stored.key()


@dataclass(frozen=True, slots=True)
class PaymentFact:
    """A payment kept for an account."""

    amount_minor: int
    currency: str
    paid_at: datetime


def counts_after(payment: PaymentFact, *, currency: str, as_of: datetime) -> bool:
    """A payment counts against a snapshot when it is in the account's currency and booked strictly after
    the snapshot's time (one booked before or at that instant is already in the reported amounts)."""
    return payment.currency == currency and payment.paid_at > as_of


def balances(*, reported_overdue_minor: int, reported_outstanding_minor: int, currency: str, as_of: datetime,
             payments: Iterable[PaymentFact], days_past_due: int = 1) -> Balances:
    """The account's balances and status now: the snapshot's reported amounts less the payments that count
    after it (``counts_after``), never below zero; nothing overdue is ``cured``; a snapshot before the due date
    (negative DPD: an instalment announced) is ``due``. The same rules as ``after_payment`` applied to each such
    payment, in any order."""
    paid = sum(p.amount_minor for p in payments if counts_after(p, currency=currency, as_of=as_of))
    return after_payment(overdue_minor=reported_overdue_minor, outstanding_minor=reported_outstanding_minor,
                         status=AccountStatus.DUE if days_past_due < 0 else AccountStatus.OVERDUE, amount_minor=paid)


def in_other_currencies(payments: Iterable[PaymentFact], *, currency: str) -> list[PaymentFact]:
    """Payments kept before the account was known, in another currency than the account's: never counted."""
    return [p for p in payments if p.currency != currency]


@dataclass(frozen=True, slots=True)
class SnapshotFact:
    """A snapshot the account was classified at: its event time and the overdue amount it reported."""

    as_of: datetime
    overdue_minor: int


def cures_before(snapshots: Iterable[SnapshotFact], payments: Iterable[PaymentFact], *, currency: str,
                 as_of: datetime) -> int:
    """How many times the account was cured before ``as_of``: of its snapshots before ``as_of`` (in event-time
    order), those whose overdue amount the payments in its currency booked after it, up to the next snapshot
    (or ``as_of``), paid in full (``balances``' rule applied to each earlier snapshot in turn)."""
    earlier = sorted((s for s in snapshots if s.as_of < as_of), key=lambda s: s.as_of)
    paid = sorted((p.paid_at, p.amount_minor) for p in payments if p.currency == currency)
    cures = 0
    for i, snapshot in enumerate(earlier):
        end = earlier[i + 1].as_of if i + 1 < len(earlier) else as_of
        amount = sum(minor for at, minor in paid if snapshot.as_of < at <= end)
        if snapshot.overdue_minor > 0 and amount >= snapshot.overdue_minor:
            cures += 1
    return cures

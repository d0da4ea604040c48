"""Promises to pay made in plans (docs/plans.md, "Promises to pay and monitoring"): a promise's lifecycle as a
transition table, its deadline, the checks a new promise must pass, and its status derived from the payments kept
and the time, never from the order the facts arrived in.

A promise of an amount by a day (``due_on``, the customer's local day) counts the payments in its currency booked
at or after it was made and before its **deadline**: the end of ``due_on`` plus the grace days in the account's
time zone (so "booked by the last day, locally" is "booked before the deadline"). The status is the definition's,
``arithmetic.promise_status``: **kept** as soon as those reach the amount; **open** until the deadline; then
**partial** (some came) or **broken** (none). A payment booked in time but delivered after the promise was decided
still counts: it moves a partial or broken promise on (to kept, or from broken to partial). A cancelled promise
counts nothing. Plans' monitoring uses the same deadline for an instalment: unpaid at the end of its due day plus
the plan's grace, in the account's zone, the plan breaks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.plans.domain.accounts import PaymentFact
from services.plans.domain.arithmetic import promise_status
from shared.domain import StateMachine

DEFAULT_TIME_ZONE = "Asia/Shanghai"
SOURCES = ("agent", "portal", "strategy", "partner")  # who may record a promise (PromiseEventV1.source)
MAX_MINOR = 10**15  # as the contracts bound one amount


class PromiseStatus(StrEnum):
    """Where a promise to pay stands."""

    OPEN = "open"
    KEPT = "kept"
    PARTIAL = "partial"
    BROKEN = "broken"
    CANCELLED = "cancelled"


class PromiseEvent(StrEnum):
    """What can happen to a promise to pay."""

    PAID = "paid"                          # payments booked in time reach the amount
    DEADLINE_PART_PAID = "deadline_part_paid"  # the deadline passed with some, not all, of the amount in
    DEADLINE_UNPAID = "deadline_unpaid"    # the deadline passed with nothing in
    LATE_PART_PAYMENT = "late_part_payment"  # a payment booked in time, delivered after the promise was broken
    CANCEL = "cancel"                      # withdrawn by an agent or partner while open


PROMISE = StateMachine[PromiseStatus, PromiseEvent]("promise", {
    PromiseStatus.OPEN: {PromiseEvent.PAID: PromiseStatus.KEPT,
                         PromiseEvent.DEADLINE_PART_PAID: PromiseStatus.PARTIAL,
                         PromiseEvent.DEADLINE_UNPAID: PromiseStatus.BROKEN,
                         PromiseEvent.CANCEL: PromiseStatus.CANCELLED},
    # only a payment booked before the deadline and delivered late moves a decided promise on
    PromiseStatus.PARTIAL: {PromiseEvent.PAID: PromiseStatus.KEPT},
    PromiseStatus.BROKEN: {PromiseEvent.PAID: PromiseStatus.KEPT,
                           PromiseEvent.LATE_PART_PAYMENT: PromiseStatus.PARTIAL},
    PromiseStatus.KEPT: {},
    PromiseStatus.CANCELLED: {},
})


def zone(name: str | None) -> ZoneInfo:
    """The account's time zone; the default (Asia/Shanghai) when none or an unknown one is stored."""
    try:
        return ZoneInfo(name or DEFAULT_TIME_ZONE)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return ZoneInfo(DEFAULT_TIME_ZONE)


def deadline(*, day: date, grace_days: int, time_zone: str | None) -> datetime:
    """The instant (UTC) the day plus ``grace_days`` ends in ``time_zone``: a promise's deadline for its due day,
    and an instalment's for its due date (past it unpaid, the plan breaks)."""
    end = datetime.combine(day + timedelta(days=grace_days + 1), time(0), tzinfo=zone(time_zone))
    return end.astimezone(UTC)


def latest_missable_due_date(*, now: datetime, grace_days: int) -> date:
    """The latest due date whose grace may have ended by ``now`` in some zone: no zone is a day or more ahead of
    UTC, so an instalment due later cannot be missed yet anywhere (the monitor's claim; the exact check is
    ``deadline`` in the account's zone)."""
    return now.astimezone(UTC).date() - timedelta(days=grace_days)


def local_day(at: datetime, time_zone: str | None) -> date:
    """The day ``at`` falls on in ``time_zone``."""
    return at.astimezone(zone(time_zone)).date()


@dataclass(frozen=True, slots=True)
class PromiseTerms:
    """What was promised, and where its days end."""

    amount_minor: int
    currency: str
    due_on: date
    made_at: datetime
    grace_days: int
    time_zone: str

    @property
    def deadline(self) -> datetime:
        return deadline(day=self.due_on, grace_days=self.grace_days, time_zone=self.time_zone)


def counted_minor(terms: PromiseTerms, payments: Iterable[PaymentFact]) -> int:
    """What counts towards the promise: payments in its currency booked at or after it was made and before its
    deadline."""
    end = terms.deadline
    return sum(p.amount_minor for p in payments
               if p.currency == terms.currency and p.paid_at is not None and terms.made_at <= p.paid_at < end)


def status_of(terms: PromiseTerms, payments: Iterable[PaymentFact], *, now: datetime) -> PromiseStatus:
    """The promise's status by the definition (``arithmetic.promise_status``), with the payments in its currency
    made since it was made, each on its local day, and today the local day of ``now``."""
    facts = [(local_day(p.paid_at, terms.time_zone), p.amount_minor) for p in payments
             if p.currency == terms.currency and p.paid_at is not None and p.paid_at >= terms.made_at]
    return PromiseStatus(promise_status(amount_minor=terms.amount_minor, due_on=terms.due_on,
                                        grace_days=terms.grace_days, payments=facts,
                                        today=local_day(now, terms.time_zone)))


def event_towards(current: PromiseStatus, target: PromiseStatus) -> PromiseEvent | None:
    """The event that moves a promise from ``current`` to the derived ``target``, or None when nothing happens
    (the same status, a kept or cancelled promise, or a decided one that the facts would call open)."""
    if current == target:
        return None
    event = {PromiseStatus.KEPT: PromiseEvent.PAID,
             PromiseStatus.PARTIAL: (PromiseEvent.DEADLINE_PART_PAID if current == PromiseStatus.OPEN
                                     else PromiseEvent.LATE_PART_PAYMENT),
             PromiseStatus.BROKEN: PromiseEvent.DEADLINE_UNPAID}.get(target)
    return event if event is not None and PROMISE.allows(current, event) else None


def refusals(*, amount_minor: int, currency: str, account_currency: str, due_on: date, today: date,
             max_days: int, source: str) -> list[str]:
    """Every reason a new promise cannot be recorded (empty: it can): a positive amount in the account's currency,
    due today or later and at most ``max_days`` ahead (``today`` is the account's local day), from a known source."""
    errors = []
    if not 0 < amount_minor <= MAX_MINOR:
        errors.append(f"amount: a promise is of a positive amount of at most {MAX_MINOR} minor units")
    if currency != account_currency:
        errors.append(f"currency: the account is in {account_currency}; promise in {account_currency}, "
                      f"not {currency}")
    if due_on < today:
        errors.append(f"due_on: {due_on} is before today ({today} in the account's time zone)")
    elif due_on > today + timedelta(days=max_days):
        errors.append(f"due_on: {due_on} is more than {max_days} days ahead (at most "
                      f"{today + timedelta(days=max_days)})")
    if source not in SOURCES:
        errors.append(f"source: one of {', '.join(SOURCES)}, not {source!r}")
    return errors

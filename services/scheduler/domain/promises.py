"""Promises to pay (docs/strategies.md, "Promises to pay"): pure logic deriving whether a promise is open, kept or
broken from the payments kept and the time, never from the order facts arrived in.

A promise of an amount by a day is **kept** once the payments booked at or after it was made (in its currency)
reach the amount; **open** until its deadline, the end of its day plus the grace days in the customer's time
zone (fixed when the promise is recorded: ``deadline``); **broken** after that, unpaid. An open promise pauses the
treatment like an agreed plan; a broken one in the current delinquency cycle counts for the strategy's
``broken_promises`` conditions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from shared.snapshots import PaymentFact

PromiseStatus = Literal["open", "kept", "broken"]


@dataclass(frozen=True, slots=True)
class Promise:
    promise_id: str
    amount_minor: int
    currency: str
    due_on: date
    made_at: datetime
    deadline: datetime


LATEST_ZONE = "Etc/GMT+12"  # where a day ends last: the timer's instant, at or after every zone's deadline
MAX_DAYS = 366  # a promise may be due up to a year after it is made (a longer one would pause collection for years)
PRE_DUE_DAYS = 30  # a promise made before the due date (an early-warning call) belongs to the cycle


def usable(*, due_on: date, made_at: datetime) -> bool:
    """Whether a promise can be kept as one: due on the day it is made (any zone) or up to ``MAX_DAYS`` after."""
    return made_at.date() - timedelta(days=1) <= due_on <= made_at.date() + timedelta(days=MAX_DAYS)


def in_cycle(*, cycle_due_date: date | None, made_at: datetime, due_date: date) -> bool:
    """Whether a promise belongs to the delinquency cycle of ``due_date``: its call's cycle when known, else made
    at most ``PRE_DUE_DAYS`` (and a day for the zones) before that due date."""
    if cycle_due_date is not None:
        return cycle_due_date == due_date
    return made_at.date() >= due_date - timedelta(days=PRE_DUE_DAYS + 1)


def deadline(*, due_on: date, grace_days: int, time_zone: str | None) -> datetime:
    """The instant a promise ends: the end of its day plus the grace days, in the customer's time zone (or where
    a day ends last, when it is not known: never too early)."""
    time_zone = time_zone or LATEST_ZONE
    end = datetime.combine(due_on + timedelta(days=grace_days + 1), time(0), tzinfo=ZoneInfo(time_zone))
    return end.astimezone(UTC)


def status(promise: Promise, *, payments: Iterable[PaymentFact], now: datetime) -> PromiseStatus:
    """Kept (paid since it was made, whenever the payment arrived), open (not yet due), or broken."""
    paid = sum(p.amount_minor for p in payments
               if p.currency == promise.currency and p.paid_at is not None and p.paid_at >= promise.made_at)
    if paid >= promise.amount_minor:
        return "kept"
    return "open" if now < promise.deadline else "broken"


# --- promises recorded in plans (plans.promise-event.v1) ----------------------------------------------------

PLANS_PREFIX = "plans:"  # their ids apart from those of promises made on calls (the call's contact id)
Verdict = Literal["open", "kept", "partial", "broken", "cancelled"]


def verdict_supersedes(*, stored: tuple[str, datetime] | None, incoming: tuple[str, datetime]) -> bool:
    """Whether plans' word on a promise (status, occurred_at) replaces the stored one: an end (kept, partial,
    broken, cancelled) beats ``open`` whatever the order; between two ends, or two opens, the later by its own
    time wins (equal times: by name), so every order ends on the same word."""
    if stored is None:
        return True
    (old, old_at), (new, new_at) = stored, incoming
    if (old == "open") != (new == "open"):
        return old == "open"
    return (new_at, new) > (old_at, old)


def judged(promise: Promise, *, verdict: str | None, payments: Iterable[PaymentFact],
           now: datetime) -> PromiseStatus | None:
    """A promise's status, trusting plans' verdict when it has one (kept; partial or broken count as broken;
    cancelled: None, no promise at all), else derived from the payments and the time (:func:`status`), as for a
    promise made on a call (also a promise plans still calls open: the timer decides it at its deadline)."""
    if verdict == "cancelled":
        return None
    if verdict == "kept":
        return "kept"
    if verdict in ("partial", "broken"):
        return "broken"
    return status(promise, payments=payments, now=now)

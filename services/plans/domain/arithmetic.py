"""Negotiation arithmetic (issue 9, first part; docs/plans.md "Arithmetic"): schedules of equal instalments, a
payment split between co-lenders by basis points, and whether a promise to pay was kept. Pure and exact: integer
minor units in, integer minor units out, sums that always add up, ties decided by name, never by order.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from services.plans.domain.schedule import PlanError

BASIS = 10_000  # shares in basis points: 10,000 = the whole payment


@dataclass(frozen=True, slots=True)
class Instalment:
    seq: int
    due_date: date
    amount_minor: int


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later, on the month's last day when it has fewer days (31 Jan + 1 month = 28/29 Feb)."""
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def even_schedule(total_minor: int, count: int, *, first_due: date, monthly: bool = True, every_days: int = 30,
                  min_instalment_minor: int = 0) -> list[Instalment]:
    """``total_minor`` in ``count`` instalments as equal as minor units allow: each is the total divided by the count,
    rounded down, and the remainder goes one minor unit at a time to the first instalments (so no two differ by more
    than one minor unit, the earliest are never smaller, and they sum to the total exactly). Due monthly on the
    first due date's day (clamped to a shorter month's last day), or every ``every_days`` days."""
    if total_minor <= 0:
        raise PlanError("the total must be positive")
    if not 1 <= count <= 360:
        raise PlanError("a schedule has 1 to 360 instalments")
    if count > total_minor:
        raise PlanError(f"{total_minor} minor units cannot be split into {count} instalments of at least 1")
    base, remainder = divmod(total_minor, count)
    if base < min_instalment_minor:
        raise PlanError(f"{count} instalments of {base} minor units are below the minimum instalment "
                               f"{min_instalment_minor}")
    if not monthly and every_days < 1:
        raise PlanError("instalments are at least a day apart")
    return [Instalment(seq=k + 1,
                       due_date=add_months(first_due, k) if monthly else first_due + timedelta(days=every_days * k),
                       amount_minor=base + (1 if k < remainder else 0))
            for k in range(count)]


def split(amount_minor: int, shares_bp: Mapping[str, int]) -> dict[str, int]:
    """A payment split between parties by their shares in basis points (adding up to 10,000), by the largest
    remainder method: each gets its share rounded down, and the minor units left go one each to the parties with
    the largest remainders, ties to the name that sorts first. The parts add up to the payment exactly, and each is
    within one minor unit of its exact share."""
    if amount_minor < 0:
        raise PlanError("a payment cannot be negative")
    if not shares_bp or any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in shares_bp.values()):
        raise PlanError("shares are whole, non-negative basis points")
    if sum(shares_bp.values()) != BASIS:
        raise PlanError(f"shares add up to {sum(shares_bp.values())} basis points, not {BASIS}")
    floors = {party: amount_minor * bp // BASIS for party, bp in shares_bp.items()}
    left = amount_minor - sum(floors.values())
    by_remainder = sorted(shares_bp, key=lambda party: (-(amount_minor * shares_bp[party] % BASIS), party))
    for party in by_remainder[:left]:
        floors[party] += 1
    return floors


PromiseStatus = Literal["open", "kept", "partial", "broken"]


def promise_status(*, amount_minor: int, due_on: date, grace_days: int, payments: Iterable[tuple[date, int]],
                   today: date) -> PromiseStatus:
    """A promise of ``amount_minor`` by ``due_on``, with ``payments`` as (the customer's local day it was booked,
    amount) made since the promise: **kept** once those booked by the due date plus the grace days reach the amount
    (at once, even before the date); until that last day ends, **open**; after it, **partial** when some but not
    all of the amount came in time, **broken** when none did. A payment after the grace counts for nothing here."""
    if amount_minor <= 0 or grace_days < 0:
        raise PlanError("a promise is of a positive amount, with a grace of 0 days or more")
    last = due_on + timedelta(days=grace_days)
    paid = sum(amount for day, amount in payments if day <= last)
    if paid >= amount_minor:
        return "kept"
    if today <= last:
        return "open"
    return "partial" if paid > 0 else "broken"

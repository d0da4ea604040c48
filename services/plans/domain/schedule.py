"""Repayment plan rules: validation of a proposed schedule and allocation of payments to it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from shared.domain import DomainError
from shared.money import to_minor

MAX_INSTALMENTS = 60


class PlanError(DomainError, ValueError):
    """A plan that cannot be agreed as proposed; the message says what to change."""

    status = 422
    title = "Plan not acceptable"


@dataclass(frozen=True, slots=True)
class ScheduledInstalment:
    """A validated instalment: its number, due date and amount in minor units."""

    seq: int
    due_date: date
    amount_minor: int


def build_schedule(instalments: list[tuple[date, Decimal]], *, currency: str, today: date) -> list[ScheduledInstalment]:
    """Validate (due date, amount) pairs and number them. Dates strictly increase, none in the past."""
    if not 1 <= len(instalments) <= MAX_INSTALMENTS:
        raise PlanError(f"a plan has between 1 and {MAX_INSTALMENTS} instalments")
    schedule: list[ScheduledInstalment] = []
    previous: date | None = None
    for seq, (due, amount) in enumerate(instalments, start=1):
        if amount <= 0:
            raise PlanError(f"instalment {seq}: amount must be positive")
        try:
            minor = to_minor(amount, currency)
        except ValueError as exc:
            raise PlanError(f"instalment {seq}: {exc}") from exc
        if due < today:
            raise PlanError(f"instalment {seq}: due date {due} is in the past")
        if previous is not None and due <= previous:
            raise PlanError(f"instalment {seq}: due dates must strictly increase")
        previous = due
        schedule.append(ScheduledInstalment(seq, due, minor))
    return schedule


def allocate(payment_minor: int, outstanding: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Apply a payment to (seq, still owed) instalments, oldest first. Returns (seq, applied) pairs."""
    applied: list[tuple[int, int]] = []
    remaining = payment_minor
    for seq, owed in outstanding:
        if remaining <= 0:
            break
        take = min(owed, remaining)
        if take > 0:
            applied.append((seq, take))
            remaining -= take
    return applied

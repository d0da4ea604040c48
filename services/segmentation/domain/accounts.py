"""An account's collection status and what a payment does to it (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class AccountStatus(StrEnum):
    """An account's collection status."""

    OVERDUE = "overdue"
    CURED = "cured"  # the overdue amount was paid


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


def is_newer(incoming_as_of: datetime, stored_as_of: datetime | None) -> bool:
    """Facts arrive out of order across partitions and replays: an older one never overwrites a newer one."""
    return stored_as_of is None or stored_as_of <= incoming_as_of

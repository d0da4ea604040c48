"""Promises to pay as a table (services/scheduler/domain/promises.py): deadlines in the customer's zone, and open,
kept or broken from the payments and the time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.scheduler.domain.promises import Promise, deadline, status
from shared.snapshots import PaymentFact

MADE = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize(("zone", "grace", "expected"), [
    ("Asia/Shanghai", 0, datetime(2026, 3, 15, 16, 0, tzinfo=UTC)),     # midnight after the 15th, UTC+8
    ("Asia/Shanghai", 2, datetime(2026, 3, 17, 16, 0, tzinfo=UTC)),
    ("America/New_York", 0, datetime(2026, 3, 16, 4, 0, tzinfo=UTC)),   # EDT since 8 March: UTC-4
    (None, 0, datetime(2026, 3, 16, 12, 0, tzinfo=UTC)),                # unknown: where the day ends last (UTC-12)
])
def test_a_promise_ends_at_the_end_of_its_day_plus_grace_in_the_customers_zone(
        zone: str | None, grace: int, expected: datetime) -> None:
    assert deadline(due_on=date(2026, 3, 15), grace_days=grace, time_zone=zone) == expected


PROMISE = Promise("P1", 5_000, "CNY", date(2026, 3, 15), MADE, datetime(2026, 3, 15, 16, 0, tzinfo=UTC))
BEFORE, AFTER = datetime(2026, 3, 12, tzinfo=UTC), datetime(2026, 3, 16, tzinfo=UTC)


@pytest.mark.parametrize(("payments", "now", "expected"), [
    ([], BEFORE, "open"),
    ([], AFTER, "broken"),
    ([PaymentFact(5_000, "CNY", MADE + timedelta(days=1))], BEFORE, "kept"),
    ([PaymentFact(5_000, "CNY", MADE + timedelta(days=1))], AFTER, "kept"),
    ([PaymentFact(2_000, "CNY", MADE), PaymentFact(3_000, "CNY", MADE + timedelta(days=9))], AFTER, "kept"),  # late
    ([PaymentFact(4_999, "CNY", MADE + timedelta(days=1))], AFTER, "broken"),                 # short by one fen
    ([PaymentFact(5_000, "CNY", MADE - timedelta(seconds=1))], AFTER, "broken"),              # before the promise
    ([PaymentFact(5_000, "USD", MADE + timedelta(days=1))], AFTER, "broken"),                 # another currency
    ([PaymentFact(5_000, None, None)], AFTER, "broken"),                                     # a legacy payment
])
def test_open_kept_or_broken(payments: list[PaymentFact], now: datetime, expected: str) -> None:
    assert status(PROMISE, payments=payments, now=now) == expected

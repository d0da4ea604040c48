"""Segmentation reaches the same end state whatever the order of an account's events (docs/events.md,
"Keys and ordering"), through the real use cases on the real PostgreSQL.

For one account, hypothesis draws 2-3 overdue snapshots with distinct event times and 1-3 payments
booked before, between, at or after them, repeats some of them (a redelivery, or the same payment
under another event), and applies them in a random order, each alone or in small batches of the same
kind (as the consumer hands them over). The stored account must equal the one the events give applied
one at a time in event-time order, and the newest snapshot less the payments booked after it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from services.segmentation import service
from services.segmentation.db.models import Account, Payment
from shared.contracts import CloudEvent, topics
from shared.contracts.events import AccountOverdueV1, PaymentReceivedV1
from shared.crypto import PiiCipher
from shared.messaging import build_event
from shared.settings import DEV_PII_KEYS
from tests.helpers import committed

pytestmark = pytest.mark.integration
CIPHER = PiiCipher(DEV_PII_KEYS, "dev1")
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
DUE = date(2026, 3, 1)
# what the order must not change (account_id differs between the two runs, updated_at is the wall clock)
COMPARED = tuple(c.name for c in Account.__table__.columns  # type: ignore[attr-defined]
                 if c.name not in ("account_id", "updated_at"))



@dataclass(frozen=True)
class Snap:
    """An overdue notice as drawn: its event time and what it reports."""

    at: datetime
    days_past_due: int
    overdue_minor: int
    outstanding_minor: int
    rating: str
    account_ref: str | None


@dataclass(frozen=True)
class Pay:
    payment_id: str
    amount_minor: int
    paid_at: datetime


Fact = Snap | Pay


def time_of(fact: Fact) -> datetime:
    return fact.at if isinstance(fact, Snap) else fact.paid_at


@st.composite
def snapshots(draw: st.DrawFn) -> list[Snap]:
    hours = draw(st.lists(st.integers(0, 8), min_size=2, max_size=3, unique=True))
    found = []
    for h in hours:
        overdue = draw(st.integers(1, 5_000))
        found.append(Snap(T0 + timedelta(hours=h), draw(st.integers(0, 120)), overdue,
                          overdue + draw(st.integers(0, 5_000)), draw(st.sampled_from("ABCDE")),
                          draw(st.none() | st.from_regex(r"LN[0-9]{3}", fullmatch=True))))
    return found


# booked on the half hour from an hour before the first possible snapshot to an hour after the last:
# before, between, at the very instant of (already in it) or after the snapshots
payments = st.lists(st.builds(Pay, st.just(""), st.integers(1, 4_000),
                              st.integers(-2, 18).map(lambda k: T0 + timedelta(minutes=30 * k))),
                    min_size=1, max_size=3)


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Fact], list[list[Fact]]]:
    """The distinct facts, and the deliveries: a random order (some facts twice) cut into batches."""
    facts: list[Fact] = [*draw(snapshots()),
                         *(Pay(f"P{i}", p.amount_minor, p.paid_at) for i, p in enumerate(draw(payments)))]
    repeated = draw(st.lists(st.sampled_from(facts), max_size=3))
    order = draw(st.permutations(facts + repeated))
    joins = draw(st.lists(st.booleans(), min_size=len(order), max_size=len(order)))
    batches: list[list[Fact]] = []
    for fact, join in zip(order, joins, strict=True):
        # a batch holds one topic's events, at most three
        if join and batches and type(batches[-1][0]) is type(fact) and len(batches[-1]) < 3:
            batches[-1].append(fact)
        else:
            batches.append([fact])
    return facts, batches


class OneAccount:
    """One account's events, materialised once per account id (a repeated fact is the same event)."""

    def __init__(self, tenant: str, account_id: str, contact: dict[str, Any]) -> None:
        self.tenant, self.account_id, self.contact = tenant, account_id, contact
        self._events: dict[Snap, tuple[AccountOverdueV1, CloudEvent]] = {}

    def overdue(self, s: Snap) -> tuple[AccountOverdueV1, CloudEvent]:
        if s not in self._events:
            payload = AccountOverdueV1(
                tenant=self.tenant, account_id=self.account_id, customer_id="C1", product="loan", currency="CNY",
                outstanding_minor=s.outstanding_minor, overdue_minor=s.overdue_minor, days_past_due=s.days_past_due,
                due_date=DUE - timedelta(days=s.days_past_due), credit_rating=s.rating, contact=self.contact,
                account_ref=s.account_ref)
            event = build_event(topics.ACCOUNT_OVERDUE, payload, tenant=self.tenant, customer_id="C1",
                                source="urn:test")
            self._events[s] = (payload, event.model_copy(update={"time": s.at}))
        return self._events[s]

    def payment(self, p: Pay) -> PaymentReceivedV1:
        return PaymentReceivedV1(tenant=self.tenant, account_id=self.account_id, customer_id="C1",
                                 payment_id=f"{self.account_id}-{p.payment_id}", amount_minor=p.amount_minor,
                                 currency="CNY", paid_at=p.paid_at)

    async def apply(self, sessions: Any, batches: Sequence[Sequence[Fact]]) -> dict[str, Any]:
        """Each batch in its own unit of work, as the consumer runner does; the stored account after."""
        for batch in batches:
            async with committed(sessions) as uow:
                if isinstance(batch[0], Snap):
                    await service.record_overdue(uow, overdue=[self.overdue(s) for s in batch
                                                               if isinstance(s, Snap)])
                else:
                    await service.record_payments(uow, payments=[self.payment(p) for p in batch
                                                                 if isinstance(p, Pay)])
        async with sessions() as session:
            account = (await session.execute(select(Account).where(
                Account.tenant == self.tenant, Account.account_id == self.account_id))).scalars().one()  # type: ignore[arg-type]
            kept = (await session.execute(select(func.count()).select_from(Payment).where(
                Payment.tenant == self.tenant, Payment.account_id == self.account_id))).scalar_one()  # type: ignore[arg-type]
        return {c: getattr(account, c) for c in COMPARED} | {"payments kept": kept}


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(histories())
async def test_any_order_of_an_accounts_events_ends_where_the_sorted_order_does(
        sessions, history: tuple[list[Fact], list[list[Fact]]]) -> None:  # type: ignore[no-untyped-def]
    facts, batches = history
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    contact = {"name": CIPHER.seal("王五", context=tenant), "phone": CIPHER.seal("+8613900000003", context=tenant)}
    shuffled = await OneAccount(tenant, "ACC-SHUFFLED", contact).apply(sessions, batches)
    in_order = await OneAccount(tenant, "ACC-SORTED", contact).apply(
        sessions, [[f] for f in sorted(facts, key=lambda f: (time_of(f), isinstance(f, Snap)))])
    assert shuffled == in_order

    # and both are the newest snapshot as reported, less the payments booked strictly after it
    newest = max((f for f in facts if isinstance(f, Snap)), key=lambda s: s.at)
    paid = sum(p.amount_minor for p in facts if isinstance(p, Pay) and p.paid_at > newest.at)
    overdue = max(newest.overdue_minor - paid, 0)
    expected = {
        "as_of": newest.at, "days_past_due": newest.days_past_due, "reported_overdue_minor": newest.overdue_minor,
        "reported_outstanding_minor": newest.outstanding_minor, "overdue_minor": overdue,
        "outstanding_minor": max(newest.outstanding_minor - paid, 0), "status": "cured" if overdue == 0 else "overdue",
        "account_ref": newest.account_ref, "payments kept": sum(isinstance(f, Pay) for f in facts)}
    assert {k: shuffled[k] for k in expected} == expected

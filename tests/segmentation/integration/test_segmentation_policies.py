"""Segmentation policies on the real PostgreSQL, through the consumer's handler: an overdue event is classified by
its tenant's published policy (the segment, the history row and the announced reason name the version), and the
features a policy reads are computed from what segmentation keeps: payments before the snapshot, previous cures,
tenure since the first snapshot (whatever order the snapshots arrive in)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy import select

from services.segmentation import service
from services.segmentation.consumers import handlers
from services.segmentation.db.models import Account, SegmentChange
from shared.contracts import topics
from shared.contracts.events import AccountOverdueV1, AccountSegmentedV1, PaymentReceivedV1
from shared.crypto import PiiCipher
from shared.kafka.consumer import Delivery
from shared.messaging import build_event
from shared.settings import DEV_PII_KEYS
from tests.helpers import committed, committed_reading_outbox

pytestmark = pytest.mark.integration
CIPHER = PiiCipher(DEV_PII_KEYS, "dev1")
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
STANDARD = {"segment": "standard", "why": "no rule matched"}


def new_tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def overdue(tenant: str, at: datetime, *, dpd: int = 10, rating: str = "B", overdue_minor: int = 1_000,
            account_id: str = "A1", product: str = "loan") -> Delivery:
    payload = AccountOverdueV1(
        tenant=tenant, account_id=account_id, customer_id="C1", product=product, currency="CNY",
        outstanding_minor=10_000, overdue_minor=overdue_minor, days_past_due=dpd,
        due_date=date(2026, 3, 1) - timedelta(days=dpd), credit_rating=rating,
        contact={"name": CIPHER.seal("n", context=tenant)})
    event = build_event(topics.ACCOUNT_OVERDUE, payload, tenant=tenant, customer_id="C1", source="urn:test")
    event = event.model_copy(update={"time": at})
    record = ConsumerRecord(topics.ACCOUNT_OVERDUE.name, 0, 0, 0, 0, b"", event.to_bytes(), None, 0, 0, [])
    return Delivery(event, payload, record)


def payment(tenant: str, amount: int, paid_at: datetime, *, currency: str = "CNY") -> Delivery:
    pay = PaymentReceivedV1(tenant=tenant, account_id="A1", customer_id="C1", payment_id=uuid.uuid4().hex,
                            amount_minor=amount, currency=currency, paid_at=paid_at)
    event = build_event(topics.PAYMENT_RECEIVED, pay, tenant=tenant, customer_id="C1", source="urn:test")
    record = ConsumerRecord(topics.PAYMENT_RECEIVED.name, 0, 0, 0, 0, b"", event.to_bytes(), None, 0, 0, [])
    return Delivery(event, pay, record)


async def publish(sessions: Any, tenant: str, *rules: dict[str, Any]) -> int:
    async with committed(sessions) as uow:
        published = await service.publish_policy(uow.session, tenant=tenant, created_by="test", reason="test",
                                                 document={"rules": list(rules), "default": STANDARD})
    return published.version


async def history(sessions: Any, tenant: str) -> list[Any]:
    async with sessions() as session:
        return list((await session.execute(select(SegmentChange).where(SegmentChange.tenant == tenant)
                                           .order_by(SegmentChange.id))).scalars())


async def account(sessions: Any, tenant: str) -> Account:
    async with sessions() as session:
        return (await session.execute(select(Account).where(Account.tenant == tenant))).scalars().one()  # type: ignore[arg-type, no-any-return]


async def test_an_overdue_event_is_classified_by_the_tenants_published_policy(sessions: Any) -> None:
    tenant, other = new_tenant(), new_tenant()
    version = await publish(sessions, tenant, {"name": "cards", "segment": "high_risk",
                                               "when": {"product_in": ["card"], "dpd_min": 5}, "why": "card policy"})
    assert version == 1
    async with committed_reading_outbox(sessions) as (uow, written):
        await handlers.on_account_overdue(uow, [overdue(tenant, T0, product="card"),
                                                overdue(other, T0, product="card")])
    announced = {AccountSegmentedV1.model_validate(r.event.data).tenant: AccountSegmentedV1.model_validate(r.event.data)
                 for r in written}
    # seg-v1 would make rating B with DPD 10 prime: the tenant's policy makes it high-risk, the other keeps seg-v1
    assert (await account(sessions, tenant)).segment == "high_risk"
    assert (await account(sessions, other)).segment == "prime"
    [row] = await history(sessions, tenant)
    assert (row.segment, row.policy_version, row.as_of, row.overdue_minor) == ("high_risk", 1, T0, 1_000)
    assert row.reason == "policy-v1: rule cards: rating B, DPD 10, product card: card policy"
    assert (announced[tenant].segment, announced[tenant].reason) == ("high_risk", row.reason)
    [theirs] = await history(sessions, other)
    assert theirs.policy_version == 0 and theirs.reason.startswith("seg-v1: rule prime: rating B, DPD 10")

    # a newer version applies to the next snapshot
    assert await publish(sessions, tenant, {"name": "all-late", "segment": "standard", "when": {"dpd_min": 1}}) == 2
    async with committed(sessions) as uow:
        await handlers.on_account_overdue(uow, [overdue(tenant, T0 + timedelta(days=1), dpd=11, product="card")])
    assert [(h.segment, h.policy_version) for h in await history(sessions, tenant)] == [("high_risk", 1),
                                                                                        ("standard", 2)]


async def test_payments_count_within_the_window_before_the_snapshot_only(sessions: Any) -> None:
    tenant = new_tenant()
    await publish(sessions, tenant, {"name": "paying", "segment": "prime",
                                     "when": {"payments_in_last_days": {"days": 7, "min": 2}}})
    async with committed(sessions) as uow:
        await handlers.on_payment_received(uow, [
            payment(tenant, 10, T0 - timedelta(days=7)),                  # the window's first instant: counts
            payment(tenant, 10, T0 - timedelta(days=7, seconds=1)),       # a second before it: no
            payment(tenant, 10, T0 + timedelta(seconds=1)),               # after the snapshot: never
            payment(tenant, 10, T0 - timedelta(days=1), currency="USD")])  # another currency: no
    async with committed(sessions) as uow:
        await handlers.on_account_overdue(uow, [overdue(tenant, T0, rating="E")])
    [first] = await history(sessions, tenant)
    assert (first.segment, first.reason) == ("standard", "policy-v1: default: rating E, DPD 10: no rule matched")

    async with committed(sessions) as uow:
        await handlers.on_payment_received(uow, [payment(tenant, 10, T0 + timedelta(hours=1))])
    async with committed(sessions) as uow:  # a newer snapshot: its window moved on; it holds the two after T0
        await handlers.on_account_overdue(uow, [overdue(tenant, T0 + timedelta(hours=2), rating="E")])
    second = (await history(sessions, tenant))[-1]
    assert (second.segment, second.reason) == ("prime", "policy-v1: rule paying: rating E, DPD 10, "
                                                        "2 payments in 7 days")


async def test_previous_cures_count_earlier_snapshots_paid_in_full(sessions: Any) -> None:
    tenant = new_tenant()
    await publish(sessions, tenant, {"name": "cured-twice", "segment": "high_risk",
                                     "when": {"previous_cures_min": 2}, "why": "rolls back every time"})
    steps = [(0, 1_000, 1_000), (24, 2_000, 2_000), (48, 500, 100), (72, 700, 0)]  # (hour, overdue, paid after)
    for hours, owed, paid in steps:
        at = T0 + timedelta(hours=hours)
        async with committed(sessions) as uow:
            await handlers.on_account_overdue(uow, [overdue(tenant, at, overdue_minor=owed, rating="A")])
        if paid:
            async with committed(sessions) as uow:
                await handlers.on_payment_received(uow, [payment(tenant, paid, at + timedelta(hours=1))])
    rows = await history(sessions, tenant)
    # cures before each snapshot: 0, 1, 2 (both earlier snapshots paid in full), 2 (the third was not)
    assert [r.segment for r in rows] == ["standard", "standard", "high_risk", "high_risk"]
    assert rows[2].reason == "policy-v1: rule cured-twice: rating A, DPD 10, previous cures 2: rolls back every time"
    assert rows[3].reason.startswith("policy-v1: rule cured-twice: rating A, DPD 10, previous cures 2")


async def test_tenure_counts_from_the_earliest_snapshot_whatever_the_arrival_order(sessions: Any) -> None:
    tenant = new_tenant()
    await publish(sessions, tenant, {"name": "long-standing", "segment": "prime", "when": {"tenure_days_min": 30}})
    async with committed(sessions) as uow:
        await handlers.on_account_overdue(uow, [overdue(tenant, T0, rating="D")])
    assert (await account(sessions, tenant)).first_seen_at == T0
    async with committed(sessions) as uow:  # an older snapshot arriving late: stale, but it was seen first
        await handlers.on_account_overdue(uow, [overdue(tenant, T0 - timedelta(days=20), rating="D")])
    stored = await account(sessions, tenant)
    assert (stored.first_seen_at, stored.as_of) == (T0 - timedelta(days=20), T0)
    async with committed(sessions) as uow:
        await handlers.on_account_overdue(uow, [overdue(tenant, T0 + timedelta(days=9), rating="D")])
    assert (await history(sessions, tenant))[-1].segment == "standard"  # 29 days
    async with committed(sessions) as uow:  # in one batch: the newest is classified, the oldest counts
        await handlers.on_account_overdue(uow, [overdue(tenant, T0 + timedelta(days=10), rating="D"),
                                                overdue(tenant, T0 - timedelta(days=21), rating="D")])
    last = (await history(sessions, tenant))[-1]
    assert (last.segment, last.reason) == ("prime", "policy-v1: rule long-standing: rating D, DPD 10, tenure 31 days")
    assert (await account(sessions, tenant)).first_seen_at == T0 - timedelta(days=21)

"""Segmentation handlers on real PostgreSQL: ordering by the snapshot's time, batches, payments kept
whatever the order and deducted only when booked after the snapshot, what is announced."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy import func, select

from services.segmentation.consumers import handlers
from services.segmentation.db.models import Account, SegmentChange
from shared.contracts import topics
from shared.contracts.events import AccountOverdueV1, AccountSegmentedV1, PaymentReceivedV1
from shared.crypto import PiiCipher
from shared.kafka.consumer import Delivery
from shared.messaging import OutboxEntry, build_event
from shared.settings import DEV_PII_KEYS
from shared.uow import UnitOfWork
from tests.helpers import committed, committed_reading_outbox

pytestmark = pytest.mark.integration
CIPHER = PiiCipher(DEV_PII_KEYS, "dev1")



def overdue(tenant: str, dpd: int, at: datetime, *, account_ref: str | None = None) -> Delivery:
    payload = AccountOverdueV1(
        tenant=tenant, account_id="A1", customer_id="C1", product="loan", currency="CNY",
        outstanding_minor=10_000, overdue_minor=1_000 + dpd, days_past_due=dpd,
        due_date=date.today() - timedelta(days=dpd), credit_rating="B", account_ref=account_ref,
        contact={"name": CIPHER.seal("n", context=tenant), "phone": CIPHER.seal("+8613900000002", context=tenant)})
    event = build_event(topics.ACCOUNT_OVERDUE, payload, tenant=tenant, customer_id="C1", source="urn:test")
    event = event.model_copy(update={"time": at})
    record = ConsumerRecord(topics.ACCOUNT_OVERDUE.name, 0, 0, 0, 0, b"", event.to_bytes(), None, 0, 0, [])
    return Delivery(event, payload, record)


def payment(tenant: str, payment_id: str, amount: int, paid_at: datetime, currency: str = "CNY") -> Delivery:
    pay = PaymentReceivedV1(tenant=tenant, account_id="A1", customer_id="C1", payment_id=payment_id,
                            amount_minor=amount, currency=currency, paid_at=paid_at)
    event = build_event(topics.PAYMENT_RECEIVED, pay, tenant=tenant, customer_id="C1", source="urn:test")
    record = ConsumerRecord(topics.PAYMENT_RECEIVED.name, 0, 0, 0, 0, b"", event.to_bytes(), None, 0, 0, [])
    return Delivery(event, pay, record)


async def stored(sessions, tenant: str) -> Account:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        return (await session.execute(select(Account).where(Account.tenant == tenant))).scalars().one()  # type: ignore[arg-type, no-any-return]


async def test_an_older_fact_never_overwrites_a_newer_one(sessions) -> None:  # type: ignore[no-untyped-def]
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    async with committed(sessions) as uow:
        await handlers.on_account_overdue(uow, [overdue(tenant, 40, now), overdue(tenant, 10, now - timedelta(1))])
    async with committed(sessions) as uow:
        await handlers.on_account_overdue(uow, [overdue(tenant, 20, now - timedelta(hours=1))])  # late, stale
    async with sessions() as session:
        account = (await session.execute(select(Account).where(Account.tenant == tenant))).scalars().one()
        changes = (await session.execute(select(func.count()).select_from(SegmentChange).where(
            SegmentChange.tenant == tenant))).scalar_one()
        announced = (await session.execute(select(func.count()).select_from(OutboxEntry).where(
            OutboxEntry.key == f"{tenant}:C1".encode()))).scalar_one()
    assert (account.days_past_due, account.overdue_minor, account.segment) == (40, 1_040, "standard")
    assert changes == 1  # only the newest fact was applied and recorded
    assert announced <= 1  # and announced (the relay may already have published it)
    assert account.phone_sealed and "+86139" not in account.phone_sealed

    async with committed(sessions) as uow:
        delivery = payment(tenant, "P1", 1_040, now + timedelta(seconds=1))  # booked after the snapshot
        await handlers.on_payment_received(uow, [delivery, delivery])
    account = await stored(sessions, tenant)
    assert (account.overdue_minor, account.outstanding_minor, account.status) == (0, 8_960, "cured")
    assert (account.reported_overdue_minor, account.reported_outstanding_minor) == (1_040, 10_000)


async def test_a_payment_in_another_currency_is_refused_never_ignored(sessions) -> None:  # type: ignore[no-untyped-def]
    from services.segmentation.service import CurrencyMismatch

    tenant = f"t-{uuid.uuid4().hex[:8]}"
    async with committed(sessions) as uow:
        await handlers.on_account_overdue(uow, [overdue(tenant, 5, datetime.now(UTC))])
    usd = PaymentReceivedV1(tenant=tenant, account_id="A1", customer_id="C1", payment_id="P-USD", amount_minor=100,
                            currency="USD", paid_at=datetime.now(UTC))
    event = build_event(topics.PAYMENT_RECEIVED, usd, tenant=tenant, customer_id="C1", source="urn:test")
    record = ConsumerRecord(topics.PAYMENT_RECEIVED.name, 0, 0, 0, 0, b"", event.to_bytes(), None, 0, 0, [])
    with pytest.raises(CurrencyMismatch, match="P-USD is in USD, account A1 in CNY"):
        async with committed(sessions) as uow:  # the consumer then dead-letters the event with this reason
            await handlers.on_payment_received(uow, [Delivery(event, usd, record)])
    async with sessions() as session:
        account = (await session.execute(select(Account).where(Account.tenant == tenant))).scalars().one()
    assert account.overdue_minor == 1_005  # nothing applied, and the payment row rolled back with it


async def test_a_payment_before_its_account_is_kept_and_counts_once_the_account_arrives(sessions) -> None:  # type: ignore[no-untyped-def]
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    async with committed(sessions) as uow:
        await handlers.on_payment_received(uow, [payment(tenant, "P1", 300, now)])
    async with committed(sessions) as uow:
        await handlers.on_account_overdue(uow, [overdue(tenant, 10, now - timedelta(hours=1))])
    account = await stored(sessions, tenant)
    assert (account.overdue_minor, account.outstanding_minor, account.status) == (710, 9_700, "overdue")

    # a newer snapshot already has that payment in it: it no longer counts; a later one does
    async with committed(sessions) as uow:
        await handlers.on_account_overdue(uow, [overdue(tenant, 12, now + timedelta(hours=1))])
    assert (await stored(sessions, tenant)).overdue_minor == 1_012
    async with committed(sessions) as uow:
        await handlers.on_payment_received(uow, [payment(tenant, "P2", 12, now + timedelta(hours=2)),
                                                 payment(tenant, "P3", 500, now)])  # P3: before, already in it
    account = await stored(sessions, tenant)
    assert (account.overdue_minor, account.outstanding_minor, account.status) == (1_000, 9_988, "overdue")
    async with committed(sessions) as uow:
        await handlers.on_payment_received(uow, [payment(tenant, "P4", 1_000, now + timedelta(hours=3))])
    account = await stored(sessions, tenant)
    assert (account.overdue_minor, account.outstanding_minor, account.status) == (0, 8_988, "cured")


async def test_the_segmented_event_carries_the_reported_snapshot_its_time_and_account_ref(sessions) -> None:  # type: ignore[no-untyped-def]
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    at = datetime.now(UTC) - timedelta(hours=2)
    async with committed(sessions) as uow:
        await handlers.on_payment_received(uow, [payment(tenant, "P1", 5_000, at + timedelta(hours=1))])
    async with committed_reading_outbox(sessions) as (uow, written):
        await handlers.on_account_overdue(uow, [overdue(tenant, 20, at, account_ref="LN731")])
    [row] = written
    assert row.topic == topics.ACCOUNT_SEGMENTED.name
    announced = AccountSegmentedV1.model_validate(row.event.data)
    # the account is cured already, but the event states the snapshot: the scheduler deducts payments itself
    assert (announced.overdue_minor, announced.outstanding_minor) == (1_020, 10_000)
    assert (announced.as_of, announced.account_ref) == (at, "LN731")
    account = await stored(sessions, tenant)
    assert (account.overdue_minor, account.outstanding_minor, account.status, account.account_ref) == (
        0, 5_000, "cured", "LN731")

    async with committed_reading_outbox(sessions) as (uow, written):  # the same snapshot again: a duplicate
        await handlers.on_account_overdue(uow, [overdue(tenant, 20, at, account_ref="LN731")])
    assert written == []
    async with sessions() as session:
        changes = (await session.execute(select(func.count()).select_from(SegmentChange).where(
            SegmentChange.tenant == tenant))).scalar_one()  # type: ignore[arg-type]
    assert changes == 1


async def test_a_payment_in_another_currency_kept_before_its_account_is_not_counted_and_is_logged(
        sessions, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    async with committed(sessions) as uow:
        await handlers.on_payment_received(uow, [payment(tenant, "P-USD", 700, now, "USD"),
                                                 payment(tenant, "P-CNY", 100, now)])
    with caplog.at_level(logging.WARNING, logger="services.segmentation.service"):
        async with committed(sessions) as uow:
            await handlers.on_account_overdue(uow, [overdue(tenant, 5, now - timedelta(minutes=1))])
    account = await stored(sessions, tenant)
    assert (account.overdue_minor, account.outstanding_minor) == (905, 9_900)  # only the CNY payment counts
    [warning] = [r for r in caplog.records if r.name == "services.segmentation.service"]
    assert warning.levelno == logging.WARNING
    assert (warning.account_id, warning.account_currency, warning.payment_currencies, warning.count) == (  # type: ignore[attr-defined]
        "A1", "CNY", ["USD"], 1)


async def test_a_payment_and_the_first_snapshot_of_its_account_at_the_same_time_see_each_other(sessions) -> None:  # type: ignore[no-untyped-def]
    """Two replicas: one records a payment for an account not stored yet while the other stores the
    account's first snapshot. The second waits for the first (a lock on the account's key, stored or
    not), so it counts the payment; without it, each would miss the other."""
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    async with UnitOfWork(sessions(), source="urn:test") as paying:
        await handlers.on_payment_received(paying, [payment(tenant, "P1", 40, now)])

        async def store_snapshot() -> None:
            async with committed(sessions) as uow:
                await handlers.on_account_overdue(uow, [overdue(tenant, 10, now - timedelta(hours=1))])

        storing = asyncio.create_task(store_snapshot())
        await asyncio.sleep(0.3)
        assert not storing.done()  # waits for the payment's transaction
        await paying.commit()
    await asyncio.wait_for(storing, timeout=10)
    account = await stored(sessions, tenant)
    assert (account.overdue_minor, account.outstanding_minor) == (970, 9_960)


async def test_the_borrower_key_identifies_one_debtor_across_accounts_and_lenders(sessions) -> None:  # type: ignore[no-untyped-def]
    """The runtime's handler computes the key from the sealed phone (or national ID): the same person at two
    lenders, the phone written two ways, has one key; nothing in the event is a plaintext identifier."""
    from functools import partial

    from shared.identity import IdentityKeys, borrower_key_for

    identity = IdentityKeys(b"i" * 32)
    tenants = [f"t-{uuid.uuid4().hex[:8]}" for _ in range(2)]

    def key_of(p: AccountOverdueV1) -> str | None:
        return borrower_key_for(identity, CIPHER, tenant=p.tenant, national_id=p.contact.national_id,
                                phone=p.contact.phone)

    on_overdue = partial(handlers.on_account_overdue, borrower_key_of=key_of)
    keys = []
    for tenant, written in zip(tenants, ("+8613900000002", "+86 139-0000-0002"), strict=True):
        delivery = overdue(tenant, 5, datetime.now(UTC))
        payload = delivery.payload.model_copy(update={"contact": delivery.payload.contact.model_copy(
            update={"phone": CIPHER.seal(written, context=tenant)})})
        async with committed_reading_outbox(sessions) as (uow, outbox):
            await on_overdue(uow, [Delivery(delivery.event, payload, delivery.record)])
        [segmented] = [AccountSegmentedV1.model_validate(o.event.data) for o in outbox]
        assert segmented.borrower_key is not None and "13900000002" not in segmented.borrower_key
        keys.append(segmented.borrower_key)
    assert keys[0] == keys[1]

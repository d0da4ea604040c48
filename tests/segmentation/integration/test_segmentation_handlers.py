"""Segmentation handlers on real PostgreSQL: ordering by the fact's time, batches, payments."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy import func, select

from services.segmentation.consumers import handlers
from services.segmentation.db.models import Account, SegmentChange
from services.segmentation.settings import Settings
from shared.contracts import topics
from shared.contracts.events import AccountOverdueV1, PaymentReceivedV1
from shared.crypto import PiiCipher
from shared.db import create_engine, session_factory
from shared.kafka.consumer import Delivery
from shared.messaging import OutboxEntry, build_event
from shared.settings import DEV_PII_KEYS
from tests.helpers import committed

pytestmark = pytest.mark.integration
CIPHER = PiiCipher(DEV_PII_KEYS, "dev1")


@pytest.fixture
async def sessions(infra) -> AsyncIterator:  # type: ignore[no-untyped-def, type-arg]
    engine = create_engine(Settings(database_url=infra.database_url))
    yield session_factory(engine)
    await engine.dispose()


def overdue(tenant: str, dpd: int, at: datetime) -> Delivery:
    payload = AccountOverdueV1(
        tenant=tenant, account_id="A1", customer_id="C1", product="loan", currency="CNY",
        outstanding_minor=10_000, overdue_minor=1_000 + dpd, days_past_due=dpd,
        due_date=date.today() - timedelta(days=dpd), credit_rating="B",
        contact={"name": CIPHER.seal("n", context=tenant), "phone": CIPHER.seal("+8613900000002", context=tenant)})
    event = build_event(topics.ACCOUNT_OVERDUE, payload, tenant=tenant, customer_id="C1", source="urn:test")
    event = event.model_copy(update={"time": at})
    record = ConsumerRecord(topics.ACCOUNT_OVERDUE.name, 0, 0, 0, 0, b"", event.to_bytes(), None, 0, 0, [])
    return Delivery(event, payload, record)


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
        pay = PaymentReceivedV1(tenant=tenant, account_id="A1", customer_id="C1", payment_id="P1",
                                amount_minor=1_040, currency="CNY", paid_at=now)
        delivery = Delivery(build_event(topics.PAYMENT_RECEIVED, pay, tenant=tenant, customer_id="C1",
                                        source="urn:test"), pay,
                            ConsumerRecord(topics.PAYMENT_RECEIVED.name, 0, 0, 0, 0, b"", b"", None, 0, 0, []))
        await handlers.on_payment_received(uow, [delivery, delivery])
    async with sessions() as session:
        account = (await session.execute(select(Account).where(Account.tenant == tenant))).scalars().one()
    assert (account.overdue_minor, account.status) == (0, "cured")


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

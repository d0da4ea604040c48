"""Review attacks on segmentation's early warning (record_due, due_as_snapshot) and scoring (record_overdue,
record_payments re-scoring) on the real PostgreSQL. One test reproduced a bug found in review (now fixed);
the others add coverage of what held."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy import select

from services.segmentation.consumers import handlers
from services.segmentation.db.models import Account
from shared.contracts import topics
from shared.contracts.events import AccountOverdueV1, AccountSegmentedV1, InstalmentDueV1, PaymentReceivedV1
from shared.crypto import PiiCipher
from shared.kafka.consumer import Delivery
from shared.messaging import build_event
from shared.settings import DEV_PII_KEYS
from tests.helpers import committed, committed_reading_outbox

pytestmark = pytest.mark.integration
CIPHER = PiiCipher(DEV_PII_KEYS, "dev1")
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def new_tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def _delivery(topic: topics.Topic, payload: Any, at: datetime, event_id: str | None = None) -> Delivery:
    event = build_event(topic, payload, tenant=payload.tenant, customer_id="C1", source="urn:test")
    event = event.model_copy(update={"time": at, **({"id": event_id} if event_id else {})})
    record = ConsumerRecord(topic.name, 0, 0, 0, 0, b"", event.to_bytes(), None, 0, 0, [])
    return Delivery(event, payload, record)


def due_notice(tenant: str, at: datetime, due: date, *, zone: str = "Asia/Shanghai", amount: int = 2_000) -> Delivery:
    return _delivery(topics.INSTALMENT_DUE, InstalmentDueV1(
        tenant=tenant, account_id="A1", customer_id="C1", product="loan", currency="CNY", outstanding_minor=10_000,
        amount_due_minor=amount, due_date=due, credit_rating="D",  # type: ignore[arg-type]
        contact={"name": CIPHER.seal("n", context=tenant), "time_zone": zone}), at)  # type: ignore[arg-type]


def overdue(tenant: str, at: datetime, due: date, dpd: int, amount: int = 5_000) -> Delivery:
    return _delivery(topics.ACCOUNT_OVERDUE, AccountOverdueV1(
        tenant=tenant, account_id="A1", customer_id="C1", product="loan", currency="CNY", outstanding_minor=10_000,
        overdue_minor=amount, days_past_due=dpd, due_date=due, credit_rating="D",  # type: ignore[arg-type]
        contact={"name": CIPHER.seal("n", context=tenant), "time_zone": "Asia/Shanghai"}), at)  # type: ignore[arg-type]


def payment(tenant: str, amount: int, at: datetime, n: int = 1) -> Delivery:
    return _delivery(topics.PAYMENT_RECEIVED, PaymentReceivedV1(
        tenant=tenant, account_id="A1", customer_id="C1", payment_id=f"PAY-{n}", amount_minor=amount,
        currency="CNY", paid_at=at), at)


async def handle(sessions: Any, *deliveries: Delivery) -> list[AccountSegmentedV1]:
    async with committed_reading_outbox(sessions) as (uow, written):
        for d in deliveries:
            if d.topic == topics.INSTALMENT_DUE.name:
                await handlers.on_instalment_due(uow, [d])
            elif d.topic == topics.ACCOUNT_OVERDUE.name:
                await handlers.on_account_overdue(uow, [d])
            else:
                await handlers.on_payment_received(uow, [d])
    return [AccountSegmentedV1.model_validate(w.event.data) for w in written]


async def stored(sessions: Any, tenant: str) -> Account:
    async with sessions() as session:
        return (await session.execute(select(Account).where(Account.tenant == tenant))).scalars().one()  # type: ignore[arg-type, no-any-return]


async def test_a_due_notice_for_a_due_date_long_past_does_not_replace_the_overdue_snapshot(sessions: Any) -> None:
    tenant = new_tenant()
    due = date(2026, 1, 10)
    await handle(sessions, overdue(tenant, T0, due, dpd=50))
    announced = await handle(sessions, due_notice(tenant, T0 + timedelta(hours=1), due))
    account = await stored(sessions, tenant)
    assert (account.days_past_due, account.overdue_minor, account.status) == (50, 5_000, "overdue")
    assert [a.days_past_due for a in announced] == []


async def test_a_due_notice_far_ahead_or_long_past_alone_is_handled(sessions: Any) -> None:
    """Coverage: 40 days ahead is DPD -40 in bucket 0 (status due); a due date already past is no early warning,
    ignored (nothing stored or announced); a zone 14 h ahead of UTC counts the day there."""
    ahead, past, kiritimati = new_tenant(), new_tenant(), new_tenant()
    [a] = await handle(sessions, due_notice(ahead, T0, T0.date() + timedelta(days=40)))
    assert await handle(sessions, due_notice(past, T0, date(2000, 1, 1))) == []
    # 2 March 12:00 UTC is 3 March 02:00 in Kiritimati: due 3 March is due today there
    [k] = await handle(sessions, due_notice(kiritimati, T0 + timedelta(hours=4), date(2026, 3, 3),
                                            zone="Pacific/Kiritimati"))
    assert (a.days_past_due, a.dpd_bucket, (await stored(sessions, ahead)).status) == (-40, "0", "due")
    assert k.days_past_due == 0


ORDER = ["due", "payment-before-due", "overdue", "payment-late"]


async def test_due_notices_overdue_notices_and_payments_end_the_same_in_every_order(sessions: Any) -> None:
    due = T0.date() + timedelta(days=35)
    ends = {}
    for order in itertools.permutations(ORDER):
        tenant = new_tenant()
        facts = {"due": due_notice(tenant, T0, due),
                 "payment-before-due": payment(tenant, 500, T0 + timedelta(days=10), n=1),
                 "overdue": overdue(tenant, T0 + timedelta(days=40), due, dpd=5, amount=1_500),
                 "payment-late": payment(tenant, 700, T0 + timedelta(days=39), n=2)}
        for name in order:
            await handle(sessions, facts[name])
        await handle(sessions, *facts.values())  # a replayed batch changes nothing
        a = await stored(sessions, tenant)
        ends[order] = (a.days_past_due, a.dpd_bucket, a.overdue_minor, a.outstanding_minor, a.status, a.segment,
                       a.score_points, a.score_probability)
    assert len(set(ends.values())) == 1, ends
    assert next(iter(ends.values()))[:3] == (5, "1-15", 1_500)


async def test_a_payment_before_an_announced_instalment_reduces_it_whatever_the_order(sessions: Any) -> None:
    due = T0.date() + timedelta(days=5)
    ends = []
    for order in (("due", "payment"), ("payment", "due")):
        tenant = new_tenant()
        facts = {"due": due_notice(tenant, T0, due), "payment": payment(tenant, 2_000, T0 + timedelta(days=1))}
        for name in order:
            await handle(sessions, facts[name])
        a = await stored(sessions, tenant)
        ends.append((a.overdue_minor, a.status, a.days_past_due, a.score_points))
    assert ends[0] == ends[1]
    assert ends[0][:2] == (0, "cured")


async def test_a_replayed_due_notice_with_the_same_event_is_announced_once(sessions: Any) -> None:
    tenant = new_tenant()
    notice = due_notice(tenant, T0, T0.date() + timedelta(days=3))
    first = await handle(sessions, notice, notice)
    again = await handle(sessions, notice)
    assert len(first) == 1 and again == []
    async with committed(sessions) as uow:
        await handlers.on_instalment_due(uow, [notice])
    assert (await stored(sessions, tenant)).days_past_due == -3

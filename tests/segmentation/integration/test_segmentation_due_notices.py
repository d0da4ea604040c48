"""The early warning on the real PostgreSQL (services/segmentation/service.py ``record_due``): an instalment announced
before its due date is kept as the account's snapshot with a negative DPD (the days left, in the customer's zone),
status ``due``, scored and classified, and announced; the overdue notices after the due date take over, whatever
order the two arrive in."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy import select

from services.segmentation.consumers import handlers
from services.segmentation.db.models import Account
from shared.contracts import topics
from shared.contracts.events import AccountSegmentedV1, InstalmentDueV1
from shared.kafka.consumer import Delivery
from shared.messaging import build_event
from tests.helpers import committed, committed_reading_outbox
from tests.segmentation.integration.test_segmentation_policies import CIPHER, new_tenant, overdue, publish

pytestmark = pytest.mark.integration
DUE = date(2026, 3, 10)


def due_notice(tenant: str, at: datetime, *, rating: str = "E", amount: int = 2_000) -> Delivery:
    payload = InstalmentDueV1(
        tenant=tenant, account_id="A1", customer_id="C1", product="loan", currency="CNY", outstanding_minor=10_000,
        amount_due_minor=amount, due_date=DUE, credit_rating=rating,  # type: ignore[arg-type]
        contact={"name": CIPHER.seal("n", context=tenant), "time_zone": "Asia/Shanghai"})  # type: ignore[arg-type]
    event = build_event(topics.INSTALMENT_DUE, payload, tenant=tenant, customer_id="C1", source="urn:test")
    event = event.model_copy(update={"time": at})
    record = ConsumerRecord(topics.INSTALMENT_DUE.name, 0, 0, 0, 0, b"", event.to_bytes(), None, 0, 0, [])
    return Delivery(event, payload, record)


async def stored(sessions: Any, tenant: str) -> Account:
    async with sessions() as session:
        return (await session.execute(select(Account).where(Account.tenant == tenant))).scalars().one()  # type: ignore[arg-type, no-any-return]


async def test_an_instalment_announced_early_is_scored_classified_and_announced_with_the_days_left(
        sessions: Any) -> None:
    tenant = new_tenant()
    # 5 March 20:00 UTC is 6 March 04:00 in Shanghai: four days left there (not five, as in UTC)
    at = datetime(2026, 3, 5, 20, 0, tzinfo=UTC)
    async with committed_reading_outbox(sessions) as (uow, written):
        await handlers.on_instalment_due(uow, [due_notice(tenant, at)])
    account = await stored(sessions, tenant)
    assert (account.days_past_due, account.dpd_bucket, account.status, account.overdue_minor) == (-4, "0", "due",
                                                                                                  2_000)
    assert account.segment == "high_risk" and account.score_points is not None
    [announced] = [AccountSegmentedV1.model_validate(r.event.data) for r in written]
    assert (announced.days_past_due, announced.dpd_bucket, announced.due_date, announced.overdue_minor) == (
        -4, "0", DUE, 2_000)
    assert announced.score is not None and announced.segment.value == "high_risk"


@pytest.mark.parametrize("order", ["due first", "overdue first"])
async def test_the_overdue_notice_after_the_due_date_takes_over_whatever_the_order(sessions: Any, order: str) -> None:
    tenant = new_tenant()
    notice = due_notice(tenant, datetime(2026, 3, 5, 1, 0, tzinfo=UTC))
    late = overdue(tenant, datetime(2026, 3, 12, 1, 0, tzinfo=UTC), dpd=2)  # due 27 Feb in that helper: any cycle
    for batch in ([notice], [late]) if order == "due first" else ([late], [notice]):
        async with committed(sessions) as uow:
            if batch[0].event.type == topics.INSTALMENT_DUE.event_type:
                await handlers.on_instalment_due(uow, batch)
            else:
                await handlers.on_account_overdue(uow, batch)
    account = await stored(sessions, tenant)
    assert (account.days_past_due, account.status) == (2, "overdue")


async def test_a_notice_on_the_due_date_is_due_today_and_one_after_it_is_ignored(sessions: Any) -> None:
    tenant, late = new_tenant(), new_tenant()
    async with committed(sessions) as uow:  # 10 March 01:00 UTC is 09:00 in Shanghai: the due date itself
        await handlers.on_instalment_due(uow, [due_notice(tenant, datetime(2026, 3, 10, 1, 0, tzinfo=UTC))])
    assert (await stored(sessions, tenant)).days_past_due == 0
    async with committed(sessions) as uow:  # the day after: no early warning, the overdue notices speak for it
        await handlers.on_instalment_due(uow, [due_notice(late, datetime(2026, 3, 11, 1, 0, tzinfo=UTC))])
    async with sessions() as session:
        assert (await session.execute(select(Account).where(Account.tenant == late))).first() is None


def test_an_announced_instalment_must_fit_its_balance() -> None:
    with pytest.raises(ValueError, match="amount_due_minor cannot exceed outstanding_minor"):
        InstalmentDueV1(tenant="t", account_id="A", customer_id="C", product="p", currency="CNY",
                        outstanding_minor=100, amount_due_minor=101, due_date=DUE, credit_rating="A",
                        contact={"name": CIPHER.seal("n", context="t")})  # type: ignore[arg-type]




async def test_a_policy_rule_on_negative_dpd_picks_announced_instalments(sessions: Any) -> None:
    tenant = new_tenant()
    await publish(sessions, tenant, {"name": "early", "segment": "high_risk", "when": {"dpd_max": -1},
                                     "why": "announced, not yet due"})
    async with committed(sessions) as uow:
        await handlers.on_instalment_due(uow, [due_notice(tenant, datetime(2026, 3, 5, 1, 0, tzinfo=UTC), rating="A")])
    account = await stored(sessions, tenant)
    assert (account.segment, account.days_past_due) == ("high_risk", -5)

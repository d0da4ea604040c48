"""Review attacks on promises to pay and plan monitoring, on real PostgreSQL: a payment allocated while the
monitor's claim runs, two monitor replicas, two open promises at once, a cancel racing the timer."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from services.plans import monitoring, promises, service
from services.plans.db import promises as promise_repo
from services.plans.db.models import Plan
from shared.contracts.events import PlanEventV1
from tests.helpers import committed, committed_reading_outbox
from tests.plans.integration.test_plan_promises_service import (
    NOW,
    agree,
    deliver,
    known,
    make,
    monitor,
    of_tenant,
    plan_status,
    stored,
)
from tests.plans.support import consume, overdue_notice, payment_received

pytestmark = pytest.mark.integration


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


async def test_a_payment_committed_while_the_claim_runs_does_not_break_a_plan_paid_in_time(
        sessions: Any, tenant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    await known(sessions, tenant, "A1")
    first_due = NOW.date() + timedelta(days=1)
    plan = await agree(sessions, tenant, "A1", [(first_due, Decimal("300.00")),
                                                (first_due + timedelta(days=30), Decimal("700.00"))])
    real_claim = promise_repo.claim_missed_plans

    async def claim_racing_a_payment(session: Any, *, unpaid_due_by: Any, limit: int, skip: Any = ()) -> list[Any]:
        # What PostgreSQL does when a payment commits between the claim's snapshot and its row lock: the plan row
        # is locked as it is now, the earliest unpaid date comes from the snapshot, before the payment.
        more = {"skip": skip} if skip else {}
        async with sessions() as before:
            stale = [(r.Plan.plan_id, r.earliest, r.time_zone) for r in
                     await real_claim(before, unpaid_due_by=unpaid_due_by, limit=limit, **more)
                     if r.Plan.tenant == tenant]
            await before.rollback()
        await deliver(sessions, payment_received(tenant, "A1", "PAY-1", 30_000, paid_at=NOW + timedelta(days=1)))
        rows = []
        for plan_id, earliest, time_zone in stale:
            locked = (await session.execute(select(Plan).where(Plan.plan_id == plan_id)  # type: ignore[arg-type]
                                            .with_for_update())).scalars().one()
            rows.append(SimpleNamespace(Plan=locked, earliest=earliest, time_zone=time_zone))
        return rows

    monkeypatch.setattr(promise_repo, "claim_missed_plans", claim_racing_a_payment)
    assert await monitor(sessions, tenant, NOW + timedelta(days=10)) == []
    assert await plan_status(sessions, plan.plan_id) == "agreed"


async def test_two_monitor_replicas_break_a_plan_once(sessions: Any, tenant: str) -> None:
    await known(sessions, tenant, "A1")
    first_due = NOW.date() + timedelta(days=1)
    plan = await agree(sessions, tenant, "A1", [(first_due, Decimal("1000.00"))])
    results = await asyncio.gather(*(monitor(sessions, tenant, NOW + timedelta(days=10)) for _ in range(4)))
    assert sorted(len(r) for r in results) == [0, 0, 0, 1]
    assert await plan_status(sessions, plan.plan_id) == "broken"


async def test_two_promises_at_once_open_one(sessions: Any, tenant: str) -> None:
    await known(sessions, tenant, "A1")
    outcomes = await asyncio.gather(*(make(sessions, tenant) for _ in range(4)), return_exceptions=True)
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 1
    assert all(isinstance(o, promises.PromiseConflict) for o in outcomes if isinstance(o, BaseException))
    assert [p.status for p in await stored(sessions, tenant)] == ["open"]


async def test_a_cancel_racing_the_timer_ends_one_way_announced_once(sessions: Any, tenant: str) -> None:
    await known(sessions, tenant, "A1")
    view, _ = await make(sessions, tenant, due_on=NOW.date(), grace_days=0)
    late = view.deadline + timedelta(seconds=1)

    async def cancel() -> str:
        try:
            async with committed(sessions) as uow:
                await promises.cancel_promise(uow, tenant=tenant, promise_id=view.promise_id, reason="withdrawn",
                                              cancelled_by="agent-li", now=late)
            return "cancelled"
        except promises.PromiseNotOpen:
            return "refused"

    async def decide() -> int:
        async with committed(sessions) as uow:
            return await promises.decide_due_promises(uow, now=late, limit=10_000)

    outcome, _ = await asyncio.gather(cancel(), decide())
    [row] = await stored(sessions, tenant)
    assert (outcome, row.status) in (("cancelled", "cancelled"), ("refused", "broken"))


async def test_plans_not_yet_due_in_their_zone_do_not_hold_back_due_ones(sessions: Any, tenant: str) -> None:
    # Pago Pago (UTC-11) and Kiritimati (UTC+14): due a day earlier, Pago Pago's grace still ends an hour later
    await consume(sessions, overdue_notice(tenant, "HNL", time_zone="Pacific/Pago_Pago"),
                  overdue_notice(tenant, "CXI", time_zone="Pacific/Kiritimati"))
    # years back, so that the plans other tests leave agreed (the claim is for every tenant) come after these
    today = NOW.date() - timedelta(days=3000)
    first_due = today + timedelta(days=1)
    west, east = [(await _agreed(sessions, tenant, account, due, today)) for account, due in
                  (("HNL", first_due), ("CXI", first_due + timedelta(days=1)))]
    # the end of the east plan's grace (3 days) in Kiritimati; the west plan's an hour later
    east_end = datetime.combine(first_due + timedelta(days=5), datetime.min.time(), tzinfo=UTC) - timedelta(hours=14)
    async with committed_reading_outbox(sessions) as (uow, outbox):  # a batch of one: the west plan comes first
        await monitoring.break_missed_plans(uow, now=east_end, grace_days=3, limit=1)
    assert [PlanEventV1.model_validate(o.event.data).plan_id for o in of_tenant(outbox, tenant)] == [east.plan_id]
    assert (await plan_status(sessions, west.plan_id), await plan_status(sessions, east.plan_id)) == (
        "agreed", "broken")


async def _agreed(sessions: Any, tenant: str, account: str, due: date, today: date) -> Plan:
    async with committed(sessions) as uow:
        view = await service.agree_plan(uow, tenant=tenant, account_id=account, customer_id="C1", currency="CNY",
                                        reason="job loss", instalments=[(due, Decimal("1000.00"))],
                                        idempotency_key=None, today=today)
    return view.plan

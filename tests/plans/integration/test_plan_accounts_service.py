"""Plans' read model of accounts on real PostgreSQL, fed through the real consumer handlers: the newest
overdue snapshot wins whatever the arrival order, payments are kept once (even before the account is
known), and a plan is agreed only for a known account of the tenant, in its currency, covering what is
overdue now; a refusal stores nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import permutations
from typing import Any

import pytest
from sqlalchemy import func, select

from services.plans import service
from services.plans.db.models import AccountPayment, Plan, PlanAccount
from services.plans.domain.accounts import PlanDoesNotCover
from tests.helpers import Outboxed, committed_reading_outbox
from tests.plans.support import consume, overdue_notice, payment_received

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC).replace(microsecond=0)
TODAY = NOW.date()



@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


async def snapshot(sessions: Any, tenant: str, account_id: str = "A1") -> PlanAccount | None:
    async with sessions() as session:
        return (await session.execute(select(PlanAccount).where(
            PlanAccount.tenant == tenant, PlanAccount.account_id == account_id))).scalars().first()  # type: ignore[arg-type]


async def agree(sessions: Any, tenant: str, total: str, *, account_id: str = "A1", currency: str = "CNY",
                key: str | None = None) -> tuple[service.PlanView, list[Outboxed]]:
    """A plan in two instalments whose total is ``total``."""
    half = (Decimal(total) / 2).quantize(Decimal("0.01"))
    async with committed_reading_outbox(sessions) as (uow, outbox):
        view = await service.agree_plan(
            uow, tenant=tenant, account_id=account_id, customer_id="C1", currency=currency, reason="job loss",
            instalments=[(TODAY + timedelta(days=7), half), (TODAY + timedelta(days=37), Decimal(total) - half)],
            idempotency_key=key, today=TODAY)
    return view, outbox


async def nothing_stored(sessions: Any, tenant: str) -> bool:
    async with sessions() as session:
        return (await session.execute(select(func.count()).select_from(Plan).where(
            Plan.tenant == tenant))).scalar_one() == 0  # type: ignore[arg-type]


async def test_the_newest_snapshot_is_kept_and_a_late_older_one_changes_nothing(
        sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    # one batch: the newer and an older notice of A1, and B1's
    await consume(sessions, overdue_notice(tenant, "A1", overdue_minor=300_000, days_past_due=40, at=NOW),
                  overdue_notice(tenant, "A1", overdue_minor=100_000, days_past_due=10, at=NOW - timedelta(days=30)),
                  overdue_notice(tenant, "B1", overdue_minor=5_000, currency="USD", customer_id="C2", at=NOW))
    a1 = await snapshot(sessions, tenant)
    assert a1 is not None
    assert (a1.customer_id, a1.currency, a1.overdue_minor, a1.outstanding_minor, a1.days_past_due, a1.as_of) == (
        "C1", "CNY", 300_000, 1_200_000, 40, NOW)
    assert a1.due_date == TODAY - timedelta(days=40)
    b1 = await snapshot(sessions, tenant, "B1")
    assert b1 is not None and (b1.customer_id, b1.currency, b1.overdue_minor) == ("C2", "USD", 5_000)

    # later batches: an older notice arriving late, and the same notice redelivered
    late = overdue_notice(tenant, "A1", overdue_minor=1, days_past_due=20, at=NOW - timedelta(hours=1))
    await consume(sessions, late)
    await consume(sessions, late)
    a1 = await snapshot(sessions, tenant)
    assert a1 is not None and (a1.overdue_minor, a1.days_past_due, a1.as_of) == (300_000, 40, NOW)

    # a newer one replaces it
    await consume(sessions, overdue_notice(tenant, "A1", overdue_minor=320_000, days_past_due=41,
                                           at=NOW + timedelta(days=1)))
    a1 = await snapshot(sessions, tenant)
    assert a1 is not None and (a1.overdue_minor, a1.days_past_due) == (320_000, 41)
    # the same account id of another tenant is another account, not known to this one
    assert await snapshot(sessions, f"t-{uuid.uuid4().hex[:8]}") is None


async def test_any_arrival_order_ends_with_the_same_snapshot(sessions) -> None:  # type: ignore[no-untyped-def]
    notices = [(NOW, 9, 100_000), (NOW + timedelta(hours=1), 9, 120_000), (NOW + timedelta(hours=1), 10, 110_000)]
    ends = set()
    for order in permutations(notices):
        tenant = f"t-{uuid.uuid4().hex[:8]}"
        for at, dpd, amount in order:
            await consume(sessions, overdue_notice(tenant, "A1", overdue_minor=amount, days_past_due=dpd, at=at))
        a1 = await snapshot(sessions, tenant)
        assert a1 is not None
        ends.add((a1.as_of, a1.days_past_due, a1.overdue_minor))
    # one end; for equal times the later due date wins (DPD 9 is due a day after DPD 10)
    assert ends == {(NOW + timedelta(hours=1), 9, 120_000)}


async def test_payments_are_kept_once_even_for_an_unknown_account(sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    pay = payment_received(tenant, "A1", "P1", 40_000, paid_at=NOW)
    await consume(sessions, pay, pay)  # twice in a batch
    await consume(sessions, pay)  # and redelivered
    async with sessions() as session:
        rows = (await session.execute(select(AccountPayment).where(AccountPayment.tenant == tenant))).scalars().all()
    assert [(p.payment_id, p.account_id, p.amount_minor, p.currency, p.paid_at) for p in rows] == [
        ("P1", "A1", 40_000, "CNY", NOW)]
    assert await snapshot(sessions, tenant) is None  # a payment does not make an account known


async def test_payments_after_the_snapshot_reduce_what_a_plan_must_cover_and_those_before_do_not(
        sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    # arrival order: the payments first (the account is not known yet), then the notice
    await consume(sessions, payment_received(tenant, "A1", "P-before", 50_000, paid_at=NOW - timedelta(hours=2)),
                  payment_received(tenant, "A1", "P-after", 30_000, paid_at=NOW + timedelta(hours=1)),
                  payment_received(tenant, "A1", "P-usd", 99_000, currency="USD", paid_at=NOW + timedelta(hours=1)),
                  payment_received(tenant, "A2", "P-other-account", 99_000, paid_at=NOW + timedelta(hours=1)))
    await consume(sessions, overdue_notice(tenant, "A1", overdue_minor=250_000, at=NOW))
    # owed now: 2,500.00 less the 300.00 paid after the notice; the 500.00 paid before is already in it
    with pytest.raises(PlanDoesNotCover, match=r"must cover the 2,200.00 CNY overdue; this one totals 2,199.99 CNY"):
        await agree(sessions, tenant, "2199.99")
    assert await nothing_stored(sessions, tenant)

    # a payment arriving now, booked after the notice, lowers it further
    await consume(sessions, payment_received(tenant, "A1", "P-later", 20_000, paid_at=NOW + timedelta(hours=3)))
    with pytest.raises(PlanDoesNotCover, match=r"must cover the 2,000.00 CNY overdue"):
        await agree(sessions, tenant, "1999.98")
    view, outbox = await agree(sessions, tenant, "2000.00")  # exactly what is owed
    assert (view.plan.status, view.plan.total_minor) == ("agreed", 200_000)
    assert [o.event.data["kind"] for o in outbox] == ["agreed"]

    # a newer notice includes those payments: it is taken as it stands
    await service_cancel(sessions, tenant, view.plan.plan_id)
    await consume(sessions, overdue_notice(tenant, "A1", overdue_minor=210_000, at=NOW + timedelta(hours=4)))
    with pytest.raises(PlanDoesNotCover, match=r"must cover the 2,100.00 CNY overdue"):
        await agree(sessions, tenant, "2000.00")
    # and a late, older notice changes nothing
    await consume(sessions, overdue_notice(tenant, "A1", overdue_minor=1_000, at=NOW + timedelta(hours=3)))
    with pytest.raises(PlanDoesNotCover, match=r"must cover the 2,100.00 CNY overdue"):
        await agree(sessions, tenant, "2000.00")
    view, _ = await agree(sessions, tenant, "2100.00")
    assert view.plan.total_minor == 210_000


async def service_cancel(sessions: Any, tenant: str, plan_id: str) -> None:
    async with committed_reading_outbox(sessions) as (uow, _):
        await service.cancel_plan(uow, tenant=tenant, plan_id=plan_id)


async def test_a_plan_for_an_unknown_or_another_tenants_account_is_refused_and_stores_nothing(
        sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    other = f"t-{uuid.uuid4().hex[:8]}"
    await consume(sessions, overdue_notice(other, "A1", overdue_minor=100_000))  # A1 is the other tenant's
    for account_id in ("A1", "NO-SUCH-ACCOUNT"):
        written: list[Outboxed] = []
        with pytest.raises(service.AccountUnknown, match=r"not known to plans for your tenant.*overdue notice"):
            _, written = await agree(sessions, tenant, "5000.00", account_id=account_id, key=f"idem-{uuid.uuid4()}")
        assert written == []
    assert await nothing_stored(sessions, tenant)
    assert (service.AccountUnknown.status, service.AccountUnknown.title) == (404, "Account not known to plans")
    # the owner agrees its own
    view, _ = await agree(sessions, other, "1000.00")
    assert view.plan.account_id == "A1"


async def test_a_plan_in_another_currency_than_the_account_is_refused_and_stores_nothing(
        sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    await consume(sessions, overdue_notice(tenant, "A1", overdue_minor=100_000, currency="CNY"))
    written: list[Outboxed] = []
    with pytest.raises(service.CurrencyMismatch, match="Account 'A1' is in CNY; this plan is in USD"):
        _, written = await agree(sessions, tenant, "5000.00", currency="USD")
    assert written == []
    assert await nothing_stored(sessions, tenant)
    assert service.CurrencyMismatch.status == 422


async def test_an_idempotent_retry_is_replayed_before_the_account_is_checked_again(
        sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    await consume(sessions, overdue_notice(tenant, "A1", overdue_minor=100_000, at=NOW))
    key = f"idem-{uuid.uuid4()}"
    first, _ = await agree(sessions, tenant, "1000.00", key=key)
    # the account owes more since: the retry still returns the plan the first request made
    await consume(sessions, overdue_notice(tenant, "A1", overdue_minor=150_000, at=NOW + timedelta(days=1)))
    again, outbox = await agree(sessions, tenant, "1000.00", key=key)
    assert (again.replayed, again.plan.plan_id, outbox) == (True, first.plan.plan_id, [])

"""Co-lending on real PostgreSQL through plans' real consumer handlers: each payment is split between the
account's lenders once, whatever the order of the account's notice and its payments (every order, duplicates
included); the recoveries per lender; what a co-lender may read, and that nobody else may."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from itertools import permutations
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

from services.plans import co_lending
from services.plans.db.co_lending import PaymentSplit, PaymentSplitPart
from tests.plans.support import CIPHER, consume, overdue_notice, payment_received

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC).replace(microsecond=0)


def fresh() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


async def parts(sessions: Any, tenant: str) -> dict[str, dict[str, tuple[int, int]]]:
    """payment id -> lender -> (share_bp, amount_minor)."""
    async with sessions() as session:
        rows = (await session.execute(select(PaymentSplitPart).where(
            PaymentSplitPart.tenant == tenant))).scalars().all()  # type: ignore[arg-type]
    found: dict[str, dict[str, tuple[int, int]]] = {}
    for r in rows:
        found.setdefault(r.payment_id, {})[r.lender] = (r.share_bp, r.amount_minor)
    return found


async def heads(sessions: Any, tenant: str) -> list[str]:
    async with sessions() as session:
        return sorted((await session.execute(select(PaymentSplit.payment_id).where(
            PaymentSplit.tenant == tenant))).scalars().all())  # type: ignore[arg-type]


EXPECTED = {  # 70 % bank (the servicer), 20 % fund-b, 10 % fund-a: largest remainder, ties by name
    "P1": {"SERVICER": (7000, 701), "fund-b": (2000, 200), "fund-a": (1000, 100)},  # 1001: bank's .7 wins
    "P2": {"SERVICER": (7000, 1), "fund-b": (2000, 0), "fund-a": (1000, 0)},          # 1: the largest remainder
    # 33,335: 23,334.5 / 6,667 / 3,333.5: a tie of remainders, to the name sorting first ("fund-a" < "t-...")
    "P3": {"SERVICER": (7000, 23_334), "fund-b": (2000, 6667), "fund-a": (1000, 3334)},
}
CO_LENDERS = [("fund-a", 1000), ("fund-b", 2000)]


def expected_for(tenant: str) -> dict[str, dict[str, tuple[int, int]]]:
    return {p: {(tenant if k == "SERVICER" else k): v for k, v in by.items()} for p, by in EXPECTED.items()}


def facts(tenant: str) -> list[Any]:
    return [overdue_notice(tenant, "A1", overdue_minor=50_000, co_lenders=CO_LENDERS, at=NOW - timedelta(days=1)),
            payment_received(tenant, "A1", "P1", 1001, paid_at=NOW),
            payment_received(tenant, "A1", "P2", 1, paid_at=NOW),
            payment_received(tenant, "A1", "P3", 33_335, paid_at=NOW)]


def test_the_expected_splits_add_up() -> None:
    amounts = {"P1": 1001, "P2": 1, "P3": 33_335}
    for payment, by in EXPECTED.items():
        assert sum(amount for _, amount in by.values()) == amounts[payment]


@pytest.mark.parametrize("order", list(permutations(range(4))))
async def test_every_order_of_notice_and_payments_splits_each_payment_once_the_same_way(
        sessions: Any, order: tuple[int, ...]) -> None:
    tenant = fresh()
    events = facts(tenant)
    for i in order:
        await consume(sessions, events[i])
        if i == 2:
            await consume(sessions, events[i])  # a redelivered payment
    await consume(sessions, events[0])  # a redelivered notice
    assert await parts(sessions, tenant) == expected_for(tenant)
    assert await heads(sessions, tenant) == ["P1", "P2", "P3"]


async def test_one_batch_with_everything_twice_splits_once(sessions: Any) -> None:
    tenant = fresh()
    events = facts(tenant)
    await consume(sessions, *reversed(events), *events)
    assert await parts(sessions, tenant) == expected_for(tenant)


async def test_an_account_without_co_lenders_gives_the_servicer_everything(sessions: Any) -> None:
    tenant = fresh()
    await consume(sessions, overdue_notice(tenant, "A1"), payment_received(tenant, "A1", "P1", 777))
    assert await parts(sessions, tenant) == {"P1": {tenant: (10_000, 777)}}


async def test_a_payment_of_an_unknown_account_waits_and_another_tenants_notice_does_not_split_it(
        sessions: Any) -> None:
    tenant, other = fresh(), fresh()
    await consume(sessions, payment_received(tenant, "A1", "P1", 500))
    await consume(sessions, overdue_notice(other, "A1", co_lenders=[("fund-a", 5000)]))
    assert await parts(sessions, tenant) == {} and await parts(sessions, other) == {}
    await consume(sessions, overdue_notice(tenant, "A1", co_lenders=[("fund-a", 5000)]))
    assert await parts(sessions, tenant) == {"P1": {tenant: (5000, 250), "fund-a": (5000, 250)}}


async def test_recoveries_per_lender_and_the_co_lenders_view(sessions: Any) -> None:
    tenant = fresh()
    await consume(sessions, *facts(tenant), payment_received(tenant, "A1", "P4", 500, currency="USD"))
    async with sessions() as session:
        found = await co_lending.recoveries(session, tenant=tenant, account_id="A1")
        assert [p.payment_id for p in found.payments] == ["P1", "P2", "P3", "P4"]
        assert found.totals == {tenant: {"CNY": 24_036, "USD": 350}, "fund-b": {"CNY": 6867, "USD": 100},
                                "fund-a": {"CNY": 3434, "USD": 50}}
        view = await co_lending.co_lent_account(session, lender="fund-a", servicer=tenant, account_id="A1",
                                                cipher=CIPHER)
        assert view.lenders == {tenant: 7000, "fund-a": 1000, "fund-b": 2000}
        assert view.contact["name"] == "测*" and view.contact["phone"] == "+86 139****0001"
        assert "address" not in view.contact and "national_id" not in view.contact
        assert view.overdue_now_minor == 50_000 - 34_337  # the CNY payments booked after the notice
        assert view.recoveries.totals["fund-a"] == {"CNY": 3434, "USD": 50}
        # not a co-lender, the servicer itself, an unknown account: the same 404
        for lender, servicer, account in (("fund-c", tenant, "A1"), (tenant, tenant, "A1"), ("fund-a", tenant, "A2"),
                                          ("fund-a", fresh(), "A1")):
            with pytest.raises(co_lending.CoLentAccountNotFound):
                await co_lending.co_lent_account(session, lender=lender, servicer=servicer, account_id=account,
                                                 cipher=CIPHER)
        listed = await co_lending.co_lent_accounts(session, lender="fund-b", limit=500)
        assert (tenant, "A1") in {(r.tenant, r.account_id) for r in listed}
        assert (tenant, "A1") not in {(r.tenant, r.account_id)
                                      for r in await co_lending.co_lent_accounts(session, lender="fund-c")}


async def test_migration_0009_makes_exactly_the_tables_of_the_co_lending_models(infra: Any) -> None:
    mine = {"payment_splits", "payment_split_parts", "webhook_subscriptions", "webhook_deliveries"}

    def belongs(obj: Any, name: Any, type_: str, reflected: Any, compare_to: Any) -> bool:
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table in mine

    engine = create_async_engine(infra.database_url, connect_args={"server_settings": {"search_path": "plans"}})
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(lambda sync_conn: compare_metadata(MigrationContext.configure(
                sync_conn, opts={"include_object": belongs, "compare_type": False}), SQLModel.metadata))
    finally:
        await engine.dispose()
    assert diff == []

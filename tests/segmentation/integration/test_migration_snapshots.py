"""Migrations 0003 and 0004 on a database of their own. 0003: the reported snapshot amounts it backfills give,
through the derivation now used (services/segmentation/domain/accounts.py ``balances``), exactly the balances and
status stored before it. 0004: what it backfills for the segmentation policies' features. Both downgrade."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from services.segmentation.domain.accounts import AccountStatus, PaymentFact, balances
from shared.registry import spec
from shared.tools.migrate import alembic_config

pytestmark = pytest.mark.integration
SCHEMA = spec("segmentation").schema
AS_OF = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


async def _execute(url: str, *statements: tuple[str, dict[str, Any]], autocommit: bool = False) -> list[Any]:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT" if autocommit else "READ COMMITTED")
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'SET search_path TO "{SCHEMA}"'))
            results = [await conn.execute(text(sql), params) for sql, params in statements]
            return [r.mappings().all() if r.returns_rows else None for r in results]
    finally:
        await engine.dispose()


@pytest.fixture
def database(infra) -> Iterator[str]:  # type: ignore[no-untyped-def]
    name = f"seg_migration_{uuid.uuid4().hex[:8]}"
    try:
        asyncio.run(_execute(infra.database_url, (f'CREATE DATABASE "{name}"', {}), autocommit=True))
    except DBAPIError as exc:  # a shared server where this role may not create databases
        pytest.skip(f"cannot create a database: {exc.orig}")
    try:
        yield make_url(infra.database_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_execute(infra.database_url, (f'DROP DATABASE "{name}" WITH (FORCE)', {}), autocommit=True))


ACCOUNT = ("INSERT INTO accounts (tenant, account_id, customer_id, product, currency, outstanding_minor, "
           "overdue_minor, days_past_due, due_date, segment, dpd_bucket, status, name_sealed, time_zone, locale, "
           "co_lenders, as_of) VALUES ('t', :id, 'C1', 'loan', 'CNY', :outstanding, :overdue, 5, '2026-02-25', "
           "'standard', '1-15', :status, 'sealed', 'Asia/Shanghai', 'zh-CN', '[]', :as_of)")
PAYMENT = ("INSERT INTO payments (tenant, payment_id, account_id, amount_minor, currency, paid_at) "
           "VALUES ('t', :id, :account, :amount, :currency, :paid_at)")


def test_the_backfilled_snapshot_derives_the_balances_stored_before(database: str) -> None:
    command.upgrade(alembic_config("segmentation", database), "0002")
    after, before = AS_OF + timedelta(hours=1), AS_OF - timedelta(hours=1)
    # (id, outstanding, overdue, status) as the previous code left them, and the payments it knew
    accounts = [("A-PART", 9_700, 700, "overdue"), ("A-NONE", 10_000, 1_000, "overdue"),
                ("A-CURED", 8_000, 0, "cured"), ("A-FLOOR", 0, 0, "cured")]
    payments = [("P1", "A-PART", 300, "CNY", after), ("P2", "A-PART", 200, "CNY", before),
                ("P3", "A-PART", 500, "USD", after), ("P4", "A-CURED", 2_500, "CNY", after),
                ("P5", "A-FLOOR", 9_000, "CNY", after), ("P6", "A-ELSEWHERE", 50, "CNY", after)]
    asyncio.run(_execute(database, *(
        [(ACCOUNT, {"id": a, "outstanding": o, "overdue": d, "status": s, "as_of": AS_OF}) for a, o, d, s in accounts]
        + [(PAYMENT, {"id": p, "account": a, "amount": m, "currency": c, "paid_at": t})
           for p, a, m, c, t in payments])))

    command.upgrade(alembic_config("segmentation", database), "head")
    [rows, kept] = asyncio.run(_execute(
        database, ("SELECT * FROM accounts ORDER BY account_id", {}), ("SELECT * FROM payments", {})))
    reported = {r["account_id"]: (r["reported_overdue_minor"], r["reported_outstanding_minor"]) for r in rows}
    assert reported == {"A-PART": (1_000, 10_000), "A-NONE": (1_000, 10_000), "A-CURED": (2_500, 10_500),
                        "A-FLOOR": (9_000, 9_000)}
    for r in rows:
        derived = balances(reported_overdue_minor=r["reported_overdue_minor"],
                           reported_outstanding_minor=r["reported_outstanding_minor"], currency=r["currency"],
                           as_of=r["as_of"], payments=[PaymentFact(p["amount_minor"], p["currency"], p["paid_at"])
                                                       for p in kept if p["account_id"] == r["account_id"]])
        assert derived.overdue_minor == r["overdue_minor"] and derived.outstanding_minor == r["outstanding_minor"]
        assert derived.status is AccountStatus(r["status"])
        assert r["account_ref"] is None

    command.downgrade(alembic_config("segmentation", database), "0002")
    [columns] = asyncio.run(_execute(database, (
        "SELECT column_name FROM information_schema.columns WHERE table_schema = :s AND table_name = 'accounts'",
        {"s": SCHEMA})))
    assert not {c["column_name"] for c in columns} & {"reported_overdue_minor", "reported_outstanding_minor",
                                                      "account_ref"}


ACCOUNT_0003 = ACCOUNT.replace("co_lenders, as_of)", "co_lenders, as_of, reported_overdue_minor, "
                               "reported_outstanding_minor)").replace(
    ":as_of)", ":as_of, 1234, 9000)").replace(":outstanding, :overdue", "9000, 900").replace(":status", "'overdue'")
HISTORY = ("INSERT INTO segment_history (tenant, account_id, segment, dpd_bucket, reason, event_id, created_at) "
           "VALUES ('t', :account, 'standard', '1-15', 'seg-v1: ...', :event, :at)")


def test_0004_backfills_first_seen_and_the_newest_classified_snapshot_and_downgrades(database: str) -> None:
    """Migration 0004: ``first_seen_at`` is the earlier of the snapshot's time and the first classification; the
    newest history row of an account gets its snapshot (the stored account's), older ones none; every row was
    decided under seg-v1 (policy version 0)."""
    command.upgrade(alembic_config("segmentation", database), "0003")
    earlier, later = AS_OF - timedelta(days=3), AS_OF + timedelta(hours=2)
    asyncio.run(_execute(database, *(
        [(ACCOUNT_0003, {"id": a, "as_of": AS_OF}) for a in ("A-OLD", "A-NEW", "A-NONE")]
        + [(HISTORY, {"account": a, "event": e, "at": t}) for a, e, t in (
            ("A-OLD", "e1", earlier), ("A-OLD", "e2", AS_OF), ("A-NEW", "e3", later))])))

    command.upgrade(alembic_config("segmentation", database), "head")
    [accounts, history] = asyncio.run(_execute(
        database, ("SELECT account_id, first_seen_at FROM accounts", {}),
        ("SELECT event_id, policy_version, as_of, overdue_minor FROM segment_history ORDER BY id", {})))
    assert {r["account_id"]: r["first_seen_at"] for r in accounts} == {
        "A-OLD": earlier, "A-NEW": AS_OF, "A-NONE": AS_OF}
    assert [(r["event_id"], r["policy_version"], r["as_of"], r["overdue_minor"]) for r in history] == [
        ("e1", 0, None, None), ("e2", 0, AS_OF, 1234), ("e3", 0, AS_OF, 1234)]
    [tables] = asyncio.run(_execute(database, (
        "SELECT table_name FROM information_schema.tables WHERE table_schema = :s", {"s": SCHEMA})))
    assert {"segmentation_policies", "audit_log"} <= {t["table_name"] for t in tables}

    command.downgrade(alembic_config("segmentation", database), "0003")
    [tables, columns] = asyncio.run(_execute(database, (
        "SELECT table_name FROM information_schema.tables WHERE table_schema = :s", {"s": SCHEMA}), (
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = :s", {"s": SCHEMA})))
    assert not {"segmentation_policies", "audit_log"} & {t["table_name"] for t in tables}
    assert not {("accounts", "first_seen_at"), ("segment_history", "policy_version"), ("segment_history", "as_of"),
                ("segment_history", "overdue_minor")} & {(c["table_name"], c["column_name"]) for c in columns}

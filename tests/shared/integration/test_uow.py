"""The unit of work (shared/uow.py) against the real PostgreSQL: emitted events reach the outbox
(shared/messaging.py) only with a commit, keyed and wrapped as the contracts say; without a commit
neither the events nor the state change survive; commit listeners run only after a successful commit.

The plans schema's outbox and inbox tables serve as the store (the engine's search_path is ``plans``).
Each test uses its own tenant, and while it runs it holds the plans relay's advisory lock, so a relay
started by another test (or a local stack) cannot publish and delete the rows it checks.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from services.plans.settings import Settings
from shared.contracts import CloudEvent, Topic, message_key, topics
from shared.contracts.events import (
    ContactApprovedV1,
    ContactRequestV1,
    Instalment,
    Payload,
    PaymentReceivedV1,
    PlanEventV1,
)
from shared.db import create_engine, session_factory
from shared.messaging import claim_inbox
from shared.uow import Emitted, UnitOfWork, UnitOfWorkFactory

pytestmark = pytest.mark.integration

SOURCE = "urn:gentle-collections:test-uow"
NOW = datetime(2026, 5, 12, 8, 30, tzinfo=UTC)
_RELAY_KEY = "hashtext('outbox:' || current_schema())"  # shared/kafka/relay.py RELAY_LOCK


@dataclass(frozen=True)
class Row:
    topic: str
    key: bytes
    event: CloudEvent


@dataclass
class Db:
    sessions: async_sessionmaker[AsyncSession]
    reader: AsyncConnection
    tenant: str

    @property
    def group(self) -> str:
        return f"uow-test-{self.tenant}"

    def unit(self, after_commit: Sequence[Callable[[], None]] = ()) -> UnitOfWork:
        return UnitOfWork(self.sessions(), source=SOURCE, after_commit=after_commit)

    async def outbox(self) -> list[Row]:
        """This test's committed outbox rows (by key prefix ``tenant:``), read from another connection."""
        prefix = f"{self.tenant}:".encode()
        result = await self.reader.execute(
            text("SELECT topic, key, value FROM outbox WHERE substring(key FROM 1 FOR :n) = :prefix ORDER BY id"),
            {"n": len(prefix), "prefix": prefix})
        rows = [Row(r.topic, r.key, CloudEvent.from_bytes(r.value)) for r in result]
        await self.reader.commit()
        return rows

    async def inbox(self) -> list[str]:
        result = await self.reader.execute(
            text("SELECT event_id FROM inbox WHERE consumer_group = :g ORDER BY event_id"), {"g": self.group})
        ids = [r.event_id for r in result]
        await self.reader.commit()
        return ids


@pytest.fixture
async def db(infra) -> AsyncIterator[Db]:  # type: ignore[no-untyped-def]
    engine = create_engine(Settings(database_url=infra.database_url))
    tenant = f"uow-{uuid.uuid4().hex[:12]}"
    try:
        async with engine.connect() as reader:
            # session-level: blocks the relay's pg_try_advisory_xact_lock on the same key until released
            await reader.execute(text(f"SELECT pg_advisory_lock({_RELAY_KEY})"))
            await reader.commit()
            try:
                yield Db(session_factory(engine), reader, tenant)
            finally:
                prefix = f"{tenant}:".encode()
                await reader.execute(text("DELETE FROM outbox WHERE substring(key FROM 1 FOR :n) = :prefix"),
                                     {"n": len(prefix), "prefix": prefix})
                await reader.execute(text("DELETE FROM inbox WHERE consumer_group = :g"),
                                     {"g": f"uow-test-{tenant}"})
                await reader.execute(text(f"SELECT pg_advisory_unlock({_RELAY_KEY})"))
                await reader.commit()
    finally:
        await engine.dispose()


def payment(tenant: str, customer: str = "C-1", n: int = 1) -> PaymentReceivedV1:
    return PaymentReceivedV1(tenant=tenant, account_id=f"ACC-{n}", customer_id=customer, payment_id=f"PAY-{n}",
                             amount_minor=1000 * n, currency="CNY", paid_at=NOW)


def plan_event(tenant: str, customer: str = "C-2") -> PlanEventV1:
    return PlanEventV1(tenant=tenant, plan_id="PLN-1", account_id="ACC-2", customer_id=customer, kind="agreed",
                       currency="CNY", total_minor=50000,
                       instalments=[Instalment(seq=1, due_date=date(2026, 6, 1), amount_minor=50000)],
                       occurred_at=NOW)


def contact_request(tenant: str, customer: str) -> ContactRequestV1:
    return ContactRequestV1(tenant=tenant, contact_id="CT-1", attempt=1, account_id="ACC-3", customer_id=customer,
                            channel="sms", treatment_step="reminder", segment="standard", days_past_due=5,
                            destination=None, time_zone="Asia/Shanghai", locale="zh-CN", template_id="reminder-v1",
                            currency="CNY", overdue_minor=250000, due_date=date(2026, 5, 7), requested_at=NOW)


def cause_event(tenant: str, *, correlationid: str | None) -> CloudEvent:
    return CloudEvent(id=f"cause-{uuid.uuid4()}", source="urn:test:core", type="com.test.Cause", time=NOW,
                      tenant=tenant, traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                      correlationid=correlationid, data={})


# --- committed events ---------------------------------------------------------------------------------


async def test_committed_events_reach_the_outbox_keyed_and_wrapped(db: Db) -> None:
    cause = cause_event(db.tenant, correlationid="corr-root-1")
    first, second = payment(db.tenant, "C-1"), plan_event(db.tenant, "C-2")
    async with db.unit() as uow:
        e1 = uow.emit(topics.PAYMENT_RECEIVED, first, cause=cause)
        e2 = uow.emit(topics.PLAN_EVENT, second, subject="PLN-1", event_id="partner-id-7", source="urn:partner:x")
        assert uow.emitted == [Emitted(topics.PAYMENT_RECEIVED, e1, "C-1"), Emitted(topics.PLAN_EVENT, e2, "C-2")]
        assert await db.outbox() == []  # not before the commit
        await uow.commit()
        assert uow.emitted == []

    rows = await db.outbox()
    assert [(r.topic, r.key) for r in rows] == [
        (topics.PAYMENT_RECEIVED.name, f"{db.tenant}:C-1".encode()),
        (topics.PLAN_EVENT.name, f"{db.tenant}:C-2".encode()),
    ]
    assert rows[0].key == message_key(db.tenant, "C-1")
    assert [r.event for r in rows] == [e1, e2]  # what emit returned is what was stored

    paid = rows[0].event
    assert paid.type == topics.PAYMENT_RECEIVED.event_type
    assert paid.source == SOURCE
    assert paid.tenant == db.tenant
    assert paid.subject == "C-1"  # defaults to the customer
    assert paid.dataschema == f"urn:gentle-collections:{topics.PAYMENT_RECEIVED.name}"
    assert (paid.correlationid, paid.causationid, paid.traceparent) == ("corr-root-1", cause.id, cause.traceparent)
    assert paid.id not in (cause.id, "partner-id-7")
    assert PaymentReceivedV1.model_validate(paid.data) == first

    planned = rows[1].event
    assert (planned.id, planned.source, planned.subject) == ("partner-id-7", "urn:partner:x", "PLN-1")
    assert planned.type == topics.PLAN_EVENT.event_type
    assert (planned.causationid, planned.traceparent) == (None, None)
    assert PlanEventV1.model_validate(planned.data) == second


async def test_cause_without_correlation_makes_the_cause_the_root(db: Db) -> None:
    cause = cause_event(db.tenant, correlationid=None)
    async with db.unit() as uow:
        uow.emit(topics.PAYMENT_RECEIVED, payment(db.tenant), cause=cause)
        await uow.commit()
    [row] = await db.outbox()
    assert (row.event.correlationid, row.event.causationid) == (cause.id, cause.id)


async def test_an_event_without_cause_starts_its_own_chain(db: Db) -> None:
    async with db.unit() as uow:
        uow.emit(topics.PAYMENT_RECEIVED, payment(db.tenant))
        await uow.commit()
    [row] = await db.outbox()
    assert row.event.correlationid == row.event.id
    assert (row.event.causationid, row.event.traceparent) == (None, None)


async def test_an_event_id_override_without_cause_is_its_own_correlation(db: Db) -> None:
    async with db.unit() as uow:
        uow.emit(topics.PAYMENT_RECEIVED, payment(db.tenant), event_id=f"{db.tenant}:payment:payment-PAY-1")
        await uow.commit()
    [row] = await db.outbox()
    assert row.event.id == f"{db.tenant}:payment:payment-PAY-1"
    assert row.event.correlationid == row.event.id


async def test_an_event_id_override_keeps_the_causes_correlation(db: Db) -> None:
    cause = cause_event(db.tenant, correlationid="corr-root-2")
    async with db.unit() as uow:
        uow.emit(topics.PAYMENT_RECEIVED, payment(db.tenant), cause=cause, event_id="fixed-id-1")
        await uow.commit()
    [row] = await db.outbox()
    assert (row.event.id, row.event.correlationid, row.event.causationid) == ("fixed-id-1", "corr-root-2", cause.id)


async def test_contact_approved_is_keyed_by_the_wrapped_request(db: Db) -> None:
    approved = ContactApprovedV1(decision_id="D-1", request=contact_request(db.tenant, "C-9"))
    async with db.unit() as uow:
        uow.emit(topics.CONTACT_APPROVED, approved)
        await uow.commit()
    [row] = await db.outbox()
    assert (row.topic, row.key) == (topics.CONTACT_APPROVED.name, f"{db.tenant}:C-9".encode())
    assert (row.event.tenant, row.event.subject) == (db.tenant, "C-9")
    assert ContactApprovedV1.model_validate(row.event.data) == approved


async def test_commit_with_no_events_commits_the_state(db: Db) -> None:
    calls: list[str] = []
    async with db.unit(after_commit=[lambda: calls.append("woken")]) as uow:
        assert await claim_inbox(uow.session, db.group, ["ev-1"]) == {"ev-1"}
        await uow.commit()
    assert await db.outbox() == []
    assert await db.inbox() == ["ev-1"]
    assert calls == ["woken"]

    async with db.unit() as uow:  # nothing at all
        await uow.commit()
    assert await db.outbox() == []


# --- no commit, no events, no state -------------------------------------------------------------------


async def test_leaving_without_commit_keeps_neither_events_nor_state(db: Db) -> None:
    calls: list[str] = []
    async with db.unit(after_commit=[lambda: calls.append("woken")]) as uow:
        assert await claim_inbox(uow.session, db.group, ["ev-1"]) == {"ev-1"}
        uow.emit(topics.PAYMENT_RECEIVED, payment(db.tenant))
    assert uow.emitted == []
    assert await db.outbox() == []
    assert await db.inbox() == []
    assert calls == []


async def test_raising_in_the_block_keeps_neither_events_nor_state(db: Db) -> None:
    calls: list[str] = []

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with db.unit(after_commit=[lambda: calls.append("woken")]) as uow:
            await claim_inbox(uow.session, db.group, ["ev-1"])
            uow.emit(topics.PAYMENT_RECEIVED, payment(db.tenant))
            raise Boom
    assert await db.outbox() == []
    assert await db.inbox() == []
    assert calls == []


async def test_explicit_rollback_discards_what_was_emitted(db: Db) -> None:
    async with db.unit() as uow:
        await claim_inbox(uow.session, db.group, ["ev-1"])
        uow.emit(topics.PAYMENT_RECEIVED, payment(db.tenant, n=1))
        await uow.rollback()
        assert uow.emitted == []
        # the block goes on in a new transaction; only what follows the rollback is committed
        await claim_inbox(uow.session, db.group, ["ev-2"])
        uow.emit(topics.PAYMENT_RECEIVED, payment(db.tenant, n=2))
        await uow.commit()
    [row] = await db.outbox()
    assert PaymentReceivedV1.model_validate(row.event.data).payment_id == "PAY-2"
    assert await db.inbox() == ["ev-2"]


# --- after-commit listeners ---------------------------------------------------------------------------


async def test_listeners_run_once_each_after_the_commit_is_durable(db: Db) -> None:
    seen: list[tuple[str, bool]] = []
    units = UnitOfWorkFactory(db.sessions, source=SOURCE)
    async with units() as uow:
        units.after_commit.extend([lambda: seen.append(("relay", uow.session.in_transaction())),
                                   lambda: seen.append(("dispatcher", uow.session.in_transaction()))])
        uow.emit(topics.PAYMENT_RECEIVED, payment(db.tenant))
        await uow.session.flush()
        assert seen == []
        await uow.commit()
        assert seen == [("relay", False), ("dispatcher", False)]  # in order, the transaction already over
    assert uow.source == SOURCE
    [row] = await db.outbox()
    assert row.event.source == SOURCE
    assert len(seen) == 2  # leaving the block does not call them again


async def test_listeners_do_not_run_when_the_commit_fails(db: Db) -> None:
    calls: list[str] = []
    with pytest.raises(DBAPIError):
        async with db.unit(after_commit=[lambda: calls.append("woken")]) as uow:
            await claim_inbox(uow.session, db.group, ["ev-1"])
            uow.emit(topics.PAYMENT_RECEIVED, payment(db.tenant))
            with pytest.raises(DBAPIError):
                await uow.session.execute(text("SELECT 1 / 0"))  # the transaction is now aborted
            await uow.commit()
    assert calls == []
    assert await db.outbox() == []
    assert await db.inbox() == []


# --- what emit refuses --------------------------------------------------------------------------------


class Note(Payload):
    """A payload about nobody: no tenant, no customer."""

    note: str


def unvalidated(model: type[BaseModel], **fields: Any) -> BaseModel:
    """An instance of ``model`` built without validation, so required fields may be missing."""
    return model.model_construct(**fields)


NO_OWNER = Topic("test.no-owner.v1", "com.test.NoOwner.v1", Note, "a topic whose payload names nobody")


@pytest.mark.parametrize(("topic", "payload"), [
    (topics.PAYMENT_RECEIVED, "plan"),
    (topics.PLAN_EVENT, "payment"),
    (topics.CONTACT_APPROVED, "request"),  # the request alone, not the approval wrapping it
])
async def test_emit_refuses_a_payload_of_the_wrong_type(db: Db, topic: Topic, payload: str) -> None:
    wrong: BaseModel = {"plan": plan_event(db.tenant), "payment": payment(db.tenant),
                        "request": contact_request(db.tenant, "C-1")}[payload]
    async with db.unit() as uow:
        with pytest.raises(TypeError, match=f"{topic.name} carries {topic.payload.__name__}, "
                                            f"not {type(wrong).__name__}"):
            uow.emit(topic, wrong)
        assert uow.emitted == []
        await uow.commit()
    assert await db.outbox() == []


@pytest.mark.parametrize("case", ["no owner fields", "no customer", "no tenant", "approval without request"])
async def test_emit_refuses_a_payload_naming_no_tenant_and_customer(db: Db, case: str) -> None:
    topic, payload = {
        "no owner fields": (NO_OWNER, Note(note="hello")),
        "no customer": (topics.PAYMENT_RECEIVED, unvalidated(PaymentReceivedV1, tenant=db.tenant)),
        "no tenant": (topics.PAYMENT_RECEIVED, unvalidated(PaymentReceivedV1, customer_id="C-1")),
        "approval without request": (topics.CONTACT_APPROVED,
                                     unvalidated(ContactApprovedV1, decision_id="D-1", request=None)),
    }[case]
    async with db.unit() as uow:
        with pytest.raises(TypeError, match="names no tenant and customer_id: it cannot be keyed"):
            uow.emit(topic, payload)
        assert uow.emitted == []
        await uow.commit()
    assert await db.outbox() == []


async def test_the_relay_is_woken_only_when_events_were_written(db: Db) -> None:
    relay: list[str] = []
    every: list[str] = []
    units = UnitOfWorkFactory(db.sessions, source=SOURCE, on_events=[lambda: relay.append("relay")])
    units.after_commit.append(lambda: every.append("commit"))
    async with units() as uow:  # nothing to publish: a claim that found no work, say
        await uow.commit()
    assert (relay, every) == ([], ["commit"])
    async with units() as uow:
        uow.emit(topics.PAYMENT_RECEIVED, payment(db.tenant))
        await uow.commit()
    assert (relay, every) == (["relay"], ["commit", "commit"])


async def test_a_failing_listener_does_not_undo_or_fail_the_commit(db: Db) -> None:
    def broken() -> None:
        raise RuntimeError("listener bug")

    async with db.unit(after_commit=[broken]) as uow:
        uow.emit(topics.PAYMENT_RECEIVED, payment(db.tenant))
        await uow.commit()  # does not raise: the transaction is durable, the listener's failure is logged
    assert len(await db.outbox()) == 1


async def test_emitting_after_the_commit_is_refused(db: Db) -> None:
    async with db.unit() as uow:
        await uow.commit()
        with pytest.raises(RuntimeError, match="committed"):
            uow.emit(topics.PAYMENT_RECEIVED, payment(db.tenant))

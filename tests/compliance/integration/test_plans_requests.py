"""The customer's requests on the portal (plans.customer-request.v1) on the real PostgreSQL: hardship holds the
account until a person lifts it, a complaint is filed with its clock at the request and its words sealed, an opt-out
refuses that channel and no other; each request acts once however often it arrives, and a batch costs the same
statements whatever its size."""

from __future__ import annotations

import base64
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy import func, select

from services.compliance.consumers import handlers
from services.compliance.db.models import Complaint, HoldRow, SuppressionRow
from services.compliance.domain.rules import engine
from services.compliance.domain.rules.base import HoldKind, SuppressionKind
from services.compliance.service import context as ctx
from services.compliance.service import plans_facts, records
from shared.contracts import topics
from shared.contracts.events import Channel, ContactRequestV1, CustomerRequestV1
from shared.crypto import PiiCipher
from shared.identity import IdentityKeys
from shared.kafka.consumer import Delivery
from shared.messaging import build_event
from shared.settings import DEV_IDENTITY_KEY, DEV_PII_KEYS
from tests.helpers import committed, committed_reading_outbox, statements_on

pytestmark = pytest.mark.integration
CIPHER = PiiCipher(DEV_PII_KEYS, "dev1")
IDENTITY = IdentityKeys(base64.b64decode(DEV_IDENTITY_KEY))
KEYS = ctx.ContactKeys(CIPHER, IDENTITY)
AT = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
# a Wednesday, 10:00 in Shanghai: no CN-HOURS, holiday or other reason to stop a first contact
DAYTIME = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


class _Runtime:
    """What compliance's handlers take from the runtime."""

    cipher = CIPHER
    identity = IDENTITY
    settings = None


HANDLERS = handlers.build_handlers(_Runtime())  # type: ignore[arg-type]


def request(tenant: str, kind: str, *, customer: str = "C1", account: str = "A1", channel: Channel | None = None,
            detail: str | None = None, at: datetime = AT, request_id: str | None = None) -> CustomerRequestV1:
    return CustomerRequestV1(tenant=tenant, request_id=request_id or f"REQ-{uuid.uuid4().hex[:10]}",
                             account_id=account, customer_id=customer, kind=kind, channel=channel,  # type: ignore[arg-type]
                             detail=detail, occurred_at=at)


def delivery(r: CustomerRequestV1) -> Delivery:
    event = build_event(topics.CUSTOMER_REQUEST, r, tenant=r.tenant, customer_id=r.customer_id, source="urn:test")
    return Delivery(event, r, ConsumerRecord(topics.CUSTOMER_REQUEST.name, 0, 0, 0, 0, b"", event.to_bytes(), None,
                                             0, 0, []))


async def consume(sessions: Any, *requests: CustomerRequestV1) -> list[Any]:
    """Through compliance's handler, committed; the events it wrote to the outbox."""
    async with committed_reading_outbox(sessions) as (uow, written):
        await HANDLERS[topics.CUSTOMER_REQUEST.name](uow, [delivery(r) for r in requests])
    return [w.event for w in written]


async def rows(sessions: Any, model: Any, tenant: str) -> list[Any]:
    async with sessions() as session:
        return list((await session.execute(select(model).where(model.tenant == tenant))).scalars().all())


def contact_request(tenant: str, channel: Channel, *, customer: str = "C1") -> ContactRequestV1:
    destination = "c1@example.com" if channel is Channel.EMAIL else "+8613900000001"
    return ContactRequestV1(
        tenant=tenant, contact_id=f"c-{uuid.uuid4().hex}", attempt=1, account_id="A1", customer_id=customer,
        channel=channel, treatment_step="d5", segment="standard", days_past_due=5,
        destination=CIPHER.seal(destination, context=tenant), time_zone="Asia/Shanghai", locale="zh-CN",
        template_id="reminder", currency="CNY", overdue_minor=1_000, due_date=DAYTIME.date() - timedelta(days=5),
        requested_at=DAYTIME)


async def decisions(sessions: Any, requests: list[ContactRequestV1]) -> list[Any]:
    async with sessions() as session:
        contexts = await ctx.build_contexts(session, requests, keys=KEYS, now=DAYTIME)
    return [engine.decide(c, DAYTIME) for c in contexts]


async def test_hardship_holds_the_account_without_end_until_a_person_lifts_it(sessions: Any, tenant: str) -> None:
    hardship = request(tenant, "hardship", detail=CIPHER.seal("lost my job", context=tenant))
    emitted = await consume(sessions, hardship)
    [hold] = await rows(sessions, HoldRow, tenant)
    assert (hold.kind, hold.account_id, hold.starts_at, hold.ends_at, hold.lifted_at, hold.source) == (
        "hardship", "A1", AT, None, None, "portal")
    assert hardship.request_id in hold.reason and "lost my job" not in hold.reason
    assert [(e.type, e.data["action"], e.data["kind"], e.data["hold_id"]) for e in emitted] == [
        (topics.HOLD_CHANGED.event_type, "placed", "hardship", hold.id)]
    # the same request again (a replay past the inbox): nothing more
    assert await consume(sessions, hardship, hardship) == []
    assert len(await rows(sessions, HoldRow, tenant)) == 1

    # only a person lifts it, through the REST use case; a replay after that does not place it again
    async with committed(sessions) as uow:
        await records.lift_hold(uow, tenant=tenant, actor=f"{tenant}:li", hold_id=hold.id,
                                reason="forbearance agreed with the customer", now=datetime.now(UTC))
    assert await consume(sessions, hardship) == []
    [lifted] = await rows(sessions, HoldRow, tenant)
    assert (lifted.lifted_by, lifted.lift_reason) == (f"{tenant}:li", "forbearance agreed with the customer")


async def test_a_portal_complaint_starts_its_clock_at_the_request_and_stays_sealed(sessions: Any,
                                                                                  tenant: str) -> None:
    words = "张三 says the fees are wrong"
    complaint = request(tenant, "complaint", detail=CIPHER.seal(words, context=tenant))
    emitted = await consume(sessions, complaint)
    [row] = await rows(sessions, Complaint, tenant)
    assert (row.received_at, row.due_at, row.channel, row.status, row.complexity) == (
        AT, AT + timedelta(days=15), "portal", "open", "simple")
    assert row.summary == complaint.detail and "张三" not in row.summary  # kept as it came: sealed
    async with sessions() as session:
        [view] = await records.list_complaints(session, tenant=tenant, cipher=CIPHER, status="open", limit=10)
    assert view.summary == words
    [hold] = await rows(sessions, HoldRow, tenant)
    assert (hold.kind, hold.source, hold.source_ref, hold.ends_at) == ("complaint", "complaint", row.id, None)
    assert [(e.data["action"], e.data["kind"]) for e in emitted] == [("placed", "complaint")]
    assert await consume(sessions, complaint) == []  # once
    assert len(await rows(sessions, Complaint, tenant)) == 1

    # answered over REST like any complaint: its hold is lifted
    async with committed(sessions) as uow:
        await records.answer_complaint(uow, tenant=tenant, actor=f"{tenant}:li", cipher=CIPHER, complaint_id=row.id,
                                       now=datetime.now(UTC))
    [hold] = await rows(sessions, HoldRow, tenant)
    assert hold.lift_reason == "complaint answered"


async def test_a_complaint_without_words_or_with_words_sealed_for_another_tenant_gets_a_sealed_placeholder(
        sessions: Any, tenant: str) -> None:
    foreign = request(tenant, "complaint", customer="C2", detail=CIPHER.seal("secret", context="someone-else"))
    await consume(sessions, request(tenant, "complaint", customer="C1"), foreign)
    async with sessions() as session:
        views = await records.list_complaints(session, tenant=tenant, cipher=CIPHER, status=None, limit=10)
    assert sorted((v.row.customer_id, v.summary) for v in views) == [
        ("C1", plans_facts.NO_DETAIL), ("C2", plans_facts.UNREADABLE)]
    assert all(v.row.summary.startswith("pii:v1:") for v in views)


async def test_an_opt_out_refuses_that_channel_and_allows_the_others(sessions: Any, tenant: str) -> None:
    sms, email, call = (contact_request(tenant, c) for c in (Channel.SMS, Channel.EMAIL, Channel.CALL))
    before = await decisions(sessions, [sms, email])
    assert [d.outcome for d in before] == ["approved", "approved"], [d.reason for d in before]

    assert await consume(sessions, request(tenant, "opt_out", channel=Channel.SMS)) == []
    [suppression] = await rows(sessions, SuppressionRow, tenant)
    assert (suppression.customer_id, suppression.channel, suppression.destination_key, suppression.kind,
            suppression.source) == ("C1", "sms", None, SuppressionKind.OPT_OUT.value, "portal")
    refused, allowed, other_channel = await decisions(sessions, [sms, email, call])
    assert (refused.outcome, refused.rule_id) == ("blocked", "HOUSE-OPTOUT")
    assert allowed.outcome == "approved"
    assert "HOUSE-OPTOUT" not in {r.rule_id for r in other_channel.evaluated if r.verdict != "allow"}
    # another customer of the tenant, and the same customer id in another tenant, are not suppressed
    other_tenant = f"t-{uuid.uuid4().hex[:8]}"
    others = await decisions(sessions, [contact_request(tenant, Channel.SMS, customer="C2"),
                                        contact_request(other_tenant, Channel.SMS)])
    assert [d.outcome for d in others] == ["approved", "approved"]


async def test_a_batch_acts_once_per_request_in_the_same_statements_whatever_its_size(sessions: Any,
                                                                                     tenant: str) -> None:
    def batch(n: int) -> list[CustomerRequestV1]:
        kinds = [("hardship", None), ("complaint", None), ("opt_out", Channel.EMAIL)]
        return [request(tenant, kind, customer=f"C{i}", account=f"A{i}", channel=channel)
                for i in range(n) for kind, channel in kinds]

    small, large = batch(1), batch(12)
    engine_ = sessions.kw["bind"].sync_engine
    with statements_on(engine_) as few:
        await consume(sessions, *small)
    with statements_on(engine_) as many:
        emitted = await consume(sessions, *large, *large[:5])  # some twice in the batch
    assert len(few) == len(many)
    assert len([e for e in emitted if e.data["kind"] == "hardship"]) == 12
    async with sessions() as session:
        counts = {m.__tablename__: (await session.execute(select(func.count()).select_from(m)  # type: ignore[attr-defined]
                                                          .where(m.tenant == tenant))).scalar_one()
                  for m in (HoldRow, Complaint, SuppressionRow)}
    assert counts == {"holds": 26, "complaints": 13, "suppressions": 13}
    await consume(sessions, *large)  # the whole batch again
    async with sessions() as session:
        again = (await session.execute(select(func.count()).select_from(HoldRow).where(HoldRow.tenant == tenant))
                 ).scalar_one()
    assert again == 26


async def test_a_hardship_hold_reaches_the_rules_as_a_hardship_hold(sessions: Any, tenant: str) -> None:
    await consume(sessions, request(tenant, "hardship"))
    async with sessions() as session:
        [context] = await ctx.build_contexts(session, [contact_request(tenant, Channel.SMS)], keys=KEYS,
                                             now=DAYTIME)
    assert [(h.kind, h.account_id, h.ends_at) for h in context.holds] == [(HoldKind.HARDSHIP, "A1", None)]
    uk = engine.decide(replace(context, jurisdiction="UK"), DAYTIME)
    assert (uk.outcome, uk.rule_id) == ("blocked", "UK-FORBEAR")

"""Compliance's use cases on real PostgreSQL: decisions committed with every rule's verdict, and the
events in the outbox rows of the same transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from services.compliance import service
from services.compliance.db.models import ContactDecision
from services.compliance.domain.rules import cn, house
from services.compliance.domain.rules.base import HoldKind
from services.compliance.service import records
from shared.contracts import CloudEvent, topics
from shared.contracts.events import Channel, ContactApprovedV1, ContactRejectedV1, ContactRequestV1
from shared.crypto import PiiCipher
from shared.messaging import build_event
from shared.settings import DEV_PII_KEYS
from tests.helpers import committed_reading_outbox, zone_where_local_hour_is_in

pytestmark = pytest.mark.integration
CIPHER = PiiCipher(DEV_PII_KEYS, "dev1")
CN_AND_HOUSE = (*cn.RULES, *house.RULES)




@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def contact_request(tenant: str, *, contact_id: str | None = None, channel: Channel = Channel.SMS,
                    time_zone: str = "Asia/Shanghai", account_id: str = "A1", customer_id: str = "C1",
                    attempt: int = 1) -> ContactRequestV1:
    sms = channel is not Channel.EMAIL
    return ContactRequestV1(
        tenant=tenant, contact_id=contact_id or f"c-{uuid.uuid4().hex}", attempt=attempt, account_id=account_id,
        customer_id=customer_id, channel=channel, treatment_step=f"d5-{channel.value}", segment="standard",
        days_past_due=5,
        destination=CIPHER.seal("+8613900000001" if sms else "kunde@example.com", context=tenant),
        time_zone=time_zone, locale="zh-CN", template_id="reminder.sms" if sms else "reminder.email",
        currency="CNY", overdue_minor=1_000, due_date=date.today() - timedelta(days=5),
        requested_at=datetime.now(UTC))


ROOT_TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def as_delivered(request: ContactRequestV1) -> tuple[ContactRequestV1, CloudEvent]:
    """The request as the scheduler emitted it, itself caused by an earlier event (the correlation root)."""
    root = CloudEvent(id=f"root-{uuid.uuid4()}", source="urn:test", type="test.Root", time=datetime.now(UTC),
                      tenant=request.tenant, traceparent=ROOT_TRACE, data={})
    event = build_event(topics.CONTACT_REQUESTED, request, tenant=request.tenant, customer_id=request.customer_id,
                        source="urn:gentle-collections:scheduler", cause=root, subject=request.contact_id)
    return request, event


async def decisions_of(sessions: Any, contact_id: str) -> list[ContactDecision]:
    async with sessions() as session:
        return list((await session.execute(
            select(ContactDecision).where(ContactDecision.contact_id == contact_id)
            .order_by(ContactDecision.decided_at))).scalars())


async def test_a_daytime_request_is_approved_logged_with_every_verdict_and_caused_by_the_request(
        sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    zone, _ = zone_where_local_hour_is_in(10, 19)
    request, cause = as_delivered(contact_request(tenant, time_zone=zone))
    async with committed_reading_outbox(sessions) as (uow, outbox):
        await service.decide_requests(uow, requests=[(request, cause)])

    [decision] = await decisions_of(sessions, request.contact_id)
    assert (decision.tenant, decision.account_id, decision.customer_id, decision.channel, decision.attempt) == (
        tenant, "A1", "C1", "sms", 1)
    assert (decision.outcome, decision.rule_id, decision.retry_at) == ("approved", "-", None)
    evaluated = service.expand_verdicts(decision.rules_evaluated)
    assert [(r["rule_id"], r["pack"], r["verdict"], r["retry_at"]) for r in evaluated] == [
        (r.id, r.pack, "allow", None) for r in CN_AND_HOUSE]
    assert decision.policy_version == 0
    assert all(r["reason"] for r in evaluated)

    [(topic, key, event)] = outbox
    assert (topic, key) == (topics.CONTACT_APPROVED.name, f"{tenant}:C1".encode())
    assert (event.type, event.tenant, event.subject) == (topics.CONTACT_APPROVED.event_type, tenant,
                                                         request.contact_id)
    assert event.source == "urn:test"  # the unit of work's source
    assert (event.causationid, event.correlationid, event.traceparent) == (cause.id, cause.correlationid, ROOT_TRACE)
    assert cause.correlationid is not None and cause.correlationid != cause.id
    approved = ContactApprovedV1.model_validate(event.data)
    assert approved == ContactApprovedV1(decision_id=decision.decision_id, request=request)


async def test_a_night_request_is_deferred_to_eight_local_and_email_is_not_bound_by_the_hours(
        sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    zone, local_now = zone_where_local_hour_is_in(1, 5)
    sms, sms_cause = as_delivered(contact_request(tenant, time_zone=zone, customer_id="C1"))
    email, email_cause = as_delivered(contact_request(tenant, channel=Channel.EMAIL, time_zone=zone,
                                                      account_id="A2", customer_id="C2"))
    async with committed_reading_outbox(sessions) as (uow, outbox):
        await service.decide_requests(uow, requests=[(sms, sms_cause), (email, email_cause)])

    eight_local = datetime.combine(local_now.date(), time(8, 0), tzinfo=ZoneInfo(zone))
    [deferred] = await decisions_of(sessions, sms.contact_id)
    assert (deferred.outcome, deferred.rule_id) == ("deferred", "CN-HOURS")
    assert deferred.retry_at == eight_local
    assert deferred.retry_at.astimezone(ZoneInfo(zone)).time() == time(8, 0)
    assert deferred.retry_at > datetime.now(UTC)
    by_rule = {r["rule_id"]: r for r in service.expand_verdicts(deferred.rules_evaluated)}
    assert {k for k, r in by_rule.items() if r["verdict"] != "allow"} == {"CN-HOURS"}
    assert datetime.fromisoformat(by_rule["CN-HOURS"]["retry_at"]) == eight_local
    [mail_decision] = await decisions_of(sessions, email.contact_id)
    assert (mail_decision.outcome, mail_decision.rule_id) == ("approved", "-")

    by_topic = {o.topic: o.event for o in outbox}
    assert len(outbox) == 2 and set(by_topic) == {topics.CONTACT_REJECTED.name, topics.CONTACT_APPROVED.name}
    rejected_event = by_topic[topics.CONTACT_REJECTED.name]
    assert (rejected_event.causationid, rejected_event.subject) == (sms_cause.id, sms.contact_id)
    rejected = ContactRejectedV1.model_validate(rejected_event.data)
    assert (rejected.decision_id, rejected.contact_id, rejected.attempt, rejected.channel) == (
        deferred.decision_id, sms.contact_id, 1, Channel.SMS)
    assert (rejected.rule_id, rejected.retry_at) == ("CN-HOURS", eight_local)
    assert by_topic[topics.CONTACT_APPROVED.name].causationid == email_cause.id


async def test_a_contact_is_approved_once_within_a_batch_and_across_batches(
        sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    zone, _ = zone_where_local_hour_is_in(10, 19)
    contact_id = f"c-{uuid.uuid4().hex}"
    first = as_delivered(contact_request(tenant, contact_id=contact_id, time_zone=zone))
    second = as_delivered(contact_request(tenant, contact_id=contact_id, time_zone=zone, attempt=2))
    other = as_delivered(contact_request(tenant, time_zone=zone, account_id="A2", customer_id="C2"))
    async with committed_reading_outbox(sessions) as (uow, outbox):
        await service.decide_requests(uow, requests=[first, second, other])

    assert [(o.topic, o.event.subject, o.event.causationid) for o in outbox] == [
        (topics.CONTACT_APPROVED.name, contact_id, first[1].id),
        (topics.CONTACT_REJECTED.name, contact_id, second[1].id),
        (topics.CONTACT_APPROVED.name, other[0].contact_id, other[1].id)]
    blocked = ContactRejectedV1.model_validate(outbox[1].event.data)
    assert (blocked.rule_id, blocked.retry_at) == ("HOUSE-DUP", None)

    # another attempt in a later batch (e.g. reopened after a pause) is refused too
    later = as_delivered(contact_request(tenant, contact_id=contact_id, time_zone=zone, attempt=3))
    async with committed_reading_outbox(sessions) as (uow, outbox):
        await service.decide_requests(uow, requests=[later])
    [(topic, _, event)] = outbox
    assert topic == topics.CONTACT_REJECTED.name
    assert ContactRejectedV1.model_validate(event.data).rule_id == "HOUSE-DUP"

    decisions = await decisions_of(sessions, contact_id)
    assert sorted((d.outcome, d.rule_id, d.attempt) for d in decisions) == [
        ("approved", "-", 1), ("blocked", "HOUSE-DUP", 2), ("blocked", "HOUSE-DUP", 3)]
    for d in decisions:
        if d.outcome == "blocked":
            assert {r["rule_id"]: r["verdict"] for r in service.expand_verdicts(d.rules_evaluated)
                    if r["verdict"] != "allow"} == {
                "HOUSE-DUP": "block"}


async def test_a_repeated_attempt_gets_the_decision_already_made_announced_again(
        sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    """The scheduler's sweeper requests again an attempt whose verdict it never saw: the answer is the same
    decision (same id, not logged twice), within a batch and across batches, approved or deferred."""
    day_zone, _ = zone_where_local_hour_is_in(10, 19)
    night_zone, _ = zone_where_local_hour_is_in(0, 5)
    approved_id, deferred_id = f"c-{uuid.uuid4().hex}", f"c-{uuid.uuid4().hex}"
    batch = [as_delivered(contact_request(tenant, contact_id=approved_id, time_zone=day_zone)) for _ in range(2)]
    batch.append(as_delivered(contact_request(tenant, contact_id=deferred_id, time_zone=night_zone)))
    async with committed_reading_outbox(sessions) as (uow, first_outbox):
        await service.decide_requests(uow, requests=batch)
    again = [as_delivered(contact_request(tenant, contact_id=cid, time_zone=zone))
             for cid, zone in ((approved_id, day_zone), (deferred_id, night_zone))]
    async with committed_reading_outbox(sessions) as (uow, second_outbox):
        await service.decide_requests(uow, requests=again)

    def verdicts(outbox: list) -> list[tuple[str, str, str]]:  # type: ignore[type-arg]
        return [(o.topic, o.event.subject, o.event.data["decision_id"]) for o in outbox]

    [(approved_topic, _, decision_id), repeat, (deferred_topic, _, deferral_id)] = verdicts(first_outbox)
    assert (approved_topic, deferred_topic) == (topics.CONTACT_APPROVED.name, topics.CONTACT_REJECTED.name)
    assert repeat == (topics.CONTACT_APPROVED.name, approved_id, decision_id)
    assert verdicts(second_outbox) == [(topics.CONTACT_APPROVED.name, approved_id, decision_id),
                                       (topics.CONTACT_REJECTED.name, deferred_id, deferral_id)]
    assert ContactRejectedV1.model_validate(second_outbox[1].event.data).retry_at is not None
    assert [d.decision_id for d in await decisions_of(sessions, approved_id)] == [decision_id]
    assert [d.decision_id for d in await decisions_of(sessions, deferred_id)] == [deferral_id]


async def test_the_decision_log_is_the_tenants_own_and_needs_a_filter(
        sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    zone, _ = zone_where_local_hour_is_in(10, 19)
    account_id = f"ACC-{uuid.uuid4().hex[:8]}"
    requests = [as_delivered(contact_request(tenant, time_zone=zone, account_id=account_id)) for _ in range(2)]
    async with committed_reading_outbox(sessions) as (uow, _):
        await service.decide_requests(uow, requests=requests)
    contact_id = requests[0][0].contact_id

    other_tenant = f"t-{uuid.uuid4().hex[:8]}"
    async with sessions() as session:
        by_account = await service.decision_log(session, tenant=tenant, contact_id=None, account_id=account_id,
                                                limit=10)
        by_contact = await service.decision_log(session, tenant=tenant, contact_id=contact_id, account_id=None,
                                                limit=10)
        both = await service.decision_log(session, tenant=tenant, contact_id=contact_id, account_id=account_id,
                                          limit=10)
        limited = await service.decision_log(session, tenant=tenant, contact_id=None, account_id=account_id,
                                             limit=1)
        foreign = [await service.decision_log(session, tenant=other_tenant, contact_id=contact_id, account_id=None,
                                              limit=10),
                   await service.decision_log(session, tenant=other_tenant, contact_id=None, account_id=account_id,
                                              limit=10)]
        with pytest.raises(service.FilterRequired):
            await service.decision_log(session, tenant=tenant, contact_id=None, account_id=None, limit=10)

    assert sorted(d.contact_id for d in by_account) == sorted(r.contact_id for r, _ in requests)
    assert {d.tenant for d in by_account} == {tenant}
    assert [d.contact_id for d in by_contact] == [d.contact_id for d in both] == [contact_id]
    assert len(limited) == 1
    assert foreign == [[], []]
    assert service.FilterRequired.status == 400


async def test_one_sms_per_borrower_per_local_day_within_a_batch_and_across_batches(
        sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    """HOUSE-DUP across the customer's accounts: the batch sees its own approvals, a later batch the ledger's;
    the deferral waits for local midnight and then for 08:00 (CN-HOURS): every rule allows only then."""
    zone, local_now = zone_where_local_hour_is_in(10, 19)
    first = as_delivered(contact_request(tenant, time_zone=zone, account_id="A1"))
    second = as_delivered(contact_request(tenant, time_zone=zone, account_id="A2"))
    mail = as_delivered(contact_request(tenant, time_zone=zone, account_id="A3", channel=Channel.EMAIL))
    async with committed_reading_outbox(sessions) as (uow, _):
        await service.decide_requests(uow, requests=[first, second, mail])
    later = as_delivered(contact_request(tenant, time_zone=zone, account_id="A4"))
    async with committed_reading_outbox(sessions) as (uow, _):
        await service.decide_requests(uow, requests=[later])

    tomorrow_eight = datetime.combine(local_now.date() + timedelta(days=1), time(8, 0), tzinfo=ZoneInfo(zone))
    [approved] = await decisions_of(sessions, first[0].contact_id)
    [mail_decision] = await decisions_of(sessions, mail[0].contact_id)
    assert (approved.outcome, mail_decision.outcome) == ("approved", "approved")
    for request in (second, later):
        [deferred] = await decisions_of(sessions, request[0].contact_id)
        assert (deferred.outcome, deferred.rule_id, deferred.retry_at) == ("deferred", "HOUSE-DUP", tomorrow_eight)
        assert "one sms per borrower per local day" in deferred.reason and "CN-HOURS" in deferred.reason


async def test_a_hold_on_record_blocks_or_defers(sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    """The context carries the customer's holds (service/context.py): an open-ended one blocks, one with an
    end defers to it (or to the next lawful instant after it)."""
    zone, _ = zone_where_local_hour_is_in(10, 19)
    now = datetime.now(UTC)
    ends = now + timedelta(days=3)
    async with committed_reading_outbox(sessions) as (uow, _):
        await records.place_hold(uow, tenant=tenant, actor="test", kind=HoldKind.DECEASED, customer_id="C1",
                                 account_id=None, ends_at=None, reason="death certificate", now=now)
        await records.place_hold(uow, tenant=tenant, actor="test", kind=HoldKind.PROMISE, customer_id="C2",
                                 account_id=None, ends_at=ends, reason="promise to pay", now=now)
    blocked = as_delivered(contact_request(tenant, time_zone=zone, customer_id="C1"))
    deferred = as_delivered(contact_request(tenant, time_zone=zone, customer_id="C2", channel=Channel.EMAIL))
    async with committed_reading_outbox(sessions) as (uow, outbox):
        await service.decide_requests(uow, requests=[blocked, deferred])
    [b] = await decisions_of(sessions, blocked[0].contact_id)
    [d] = await decisions_of(sessions, deferred[0].contact_id)
    assert (b.outcome, b.rule_id, b.retry_at) == ("blocked", "HOUSE-HOLDS", None)
    assert "death certificate" in b.reason
    assert (d.outcome, d.rule_id) == ("deferred", "HOUSE-HOLDS")
    assert d.retry_at is not None and abs(d.retry_at - ends) < timedelta(seconds=1)  # e-mail: no hours in CN
    assert [o.topic for o in outbox] == [topics.CONTACT_REJECTED.name] * 2

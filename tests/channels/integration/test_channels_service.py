"""Channels' use cases on real PostgreSQL: approved contacts recorded once, claims and provider answers,
recovery of interrupted dispatches, delivery receipts (only for our provider reference, from the account
it was sent through) and the reconciler's polls; statuses committed, outcomes in the outbox rows of the
same transaction.

The table is shared by every test of the session: each test works on its own tenant, looks only at its
own rows, and settles what it leaves 'sending', 'dispatching' or 'sent' so that no later claim, recovery
or reconciliation picks it up."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from services.channels import service
from services.channels.db.models import ContactAttempt
from services.channels.domain.messages import SendResult, StatusReport
from shared.contracts import topics
from shared.contracts.events import Channel, ContactApprovedV1, ContactOutcomeV1, ContactRequestV1
from shared.crypto import PiiCipher
from shared.settings import DEV_PII_KEYS
from shared.uow import UnitOfWork
from tests.helpers import Outboxed, committed, committed_reading_outbox

pytestmark = pytest.mark.integration
CIPHER = PiiCipher(DEV_PII_KEYS, "dev1")
POLICY = service.RetryPolicy(max_tries=2, backoff_base_s=2.0, backoff_max_s=300.0)


PARK = text("UPDATE contact_attempts SET status = 'failed', detail = 'left by a test' "
            "WHERE tenant = :tenant AND status IN ('sending', 'dispatching', 'sent')")
ACCOUNT = "acct-1"


def outcomes(outbox: list[Outboxed]) -> dict[str, ContactOutcomeV1]:
    """The ContactOutcome payloads by contact id (at most one each)."""
    assert {o.topic for o in outbox} <= {topics.CONTACT_OUTCOME.name}
    found: dict[str, ContactOutcomeV1] = {}
    for o in outbox:
        payload = ContactOutcomeV1.model_validate(o.event.data)
        assert (o.event.type, o.event.subject, o.key) == (
            topics.CONTACT_OUTCOME.event_type, payload.contact_id, f"{payload.tenant}:{payload.customer_id}".encode())
        assert payload.contact_id not in found, "two outcomes for one contact"
        found[payload.contact_id] = payload
    return found



@pytest.fixture
async def tenant(sessions) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    name = f"t-{uuid.uuid4().hex[:8]}"
    yield name
    async with sessions() as session:  # settle what this test left to send: no later claim or recovery sees it
        await session.execute(PARK, {"tenant": name})
        await session.commit()


DESTINATIONS = {Channel.SMS: "+8613900000001", Channel.EMAIL: "kunde@example.com",
                Channel.CALL: "+8613900000001", Channel.FIELD: "上海市浦东新区1号"}


def approval(tenant: str, channel: Channel, n: int, *, account_ref: str | None = None) -> ContactApprovedV1:
    sms_like = channel is not Channel.EMAIL
    return ContactApprovedV1(decision_id=str(uuid.uuid4()), request=ContactRequestV1(
        tenant=tenant, contact_id=f"{tenant}-{channel.value}-{n}", attempt=1, account_id=f"A{n}",
        account_ref=account_ref,
        customer_id=f"C{n}", channel=channel, treatment_step=f"d5-{channel.value}", segment="standard",
        days_past_due=5, destination=CIPHER.seal(DESTINATIONS[channel], context=tenant), time_zone="Asia/Shanghai",
        locale="zh-CN", template_id="reminder.sms" if sms_like else "reminder.email", currency="CNY",
        overdue_minor=12_345, due_date=date(2026, 1, 15), requested_at=datetime.now(UTC)))


async def record(sessions: Any, approvals: list[ContactApprovedV1]) -> tuple[int, list[Outboxed]]:
    async with committed_reading_outbox(sessions) as (uow, outbox):
        created = await service.record_approved(uow, approved=approvals)
    return created, outbox


async def claim(sessions: Any, tenant: str) -> dict[str, Any]:
    """Claim what is due (as the dispatcher does, committed) and return this tenant's claimed rows."""
    async with committed(sessions) as uow:
        claimed = await service.claim_for_dispatch(uow, limit=10_000)
    return {a.contact_id: a for a in claimed if a.tenant == tenant}


async def answer(sessions: Any, results: list[SendResult]) -> list[Outboxed]:
    async with committed_reading_outbox(sessions) as (uow, outbox):
        await service.record_results(uow, results=results, policy=POLICY)
    return outbox


async def attempts(sessions: Any, tenant: str) -> dict[str, ContactAttempt]:
    async with sessions() as session:
        rows = (await session.execute(select(ContactAttempt).where(ContactAttempt.tenant == tenant))).scalars()
        return {a.contact_id: a for a in rows}


async def test_approved_contacts_are_recorded_once_and_agent_channels_become_tasks(
        sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    approvals = [approval(tenant, channel, n, account_ref="8842" if n == 0 else None)
                 for n, channel in enumerate(Channel)]
    sms, email, call, field = (a.request.contact_id for a in approvals)
    created, outbox = await record(sessions, approvals)

    assert created == 4
    rows = await attempts(sessions, tenant)
    assert {cid: (a.status, a.tries, a.provider_ref) for cid, a in rows.items()} == {
        sms: ("sending", 0, None), email: ("sending", 0, None),
        call: ("task_created", 0, None), field: ("task_created", 0, None)}
    stored = rows[sms]
    assert (stored.account_id, stored.customer_id, stored.template_id, stored.overdue_minor, stored.currency) == (
        "A0", "C0", "reminder.sms", 12_345, "CNY")
    assert (stored.account_ref, rows[email].account_ref) == ("8842", None)
    assert CIPHER.open(stored.destination_sealed or "", context=tenant) == "+8613900000001"
    assert stored.destination_sealed == approvals[0].request.destination  # stored sealed, as it came
    tasks = outcomes(outbox)
    assert set(tasks) == {call, field}
    for contact_id, channel, n in ((call, Channel.CALL, 2), (field, Channel.FIELD, 3)):
        o = tasks[contact_id]
        assert (o.tenant, o.account_id, o.customer_id, o.channel, o.outcome) == (
            tenant, f"A{n}", f"C{n}", channel, "task_created")
        assert o.detail and channel.value in o.detail
    assert {o.key for o in outbox} == {f"{tenant}:C2".encode(), f"{tenant}:C3".encode()}

    # the same approvals again (the scheduler asked again, having seen no outcome): nothing inserted or sent
    # again; the settled ones (the tasks) have their outcome announced again, as of when it happened
    created, outbox = await record(sessions, approvals)
    assert created == 0
    again = outcomes(outbox)
    assert {cid: o.outcome for cid, o in again.items()} == {call: "task_created", field: "task_created"}
    assert again[call].occurred_at == rows[call].updated_at
    assert {cid: a.status for cid, a in (await attempts(sessions, tenant)).items()} == {
        cid: a.status for cid, a in rows.items()}
    # mixed with a new one, only the new one is recorded
    created, outbox = await record(sessions, [approvals[0], approval(tenant, Channel.CALL, 9)])
    assert created == 1
    assert list(outcomes(outbox)) == [f"{tenant}-call-9"]  # the SMS is still being sent: no outcome yet


async def test_provider_answers_sent_retried_with_backoff_and_failed(
        sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    approvals = [approval(tenant, Channel.SMS, n) for n in range(3)] + [approval(tenant, Channel.EMAIL, 3)]
    ok, retry, refused, mail = (a.request.contact_id for a in approvals)
    await record(sessions, approvals)

    claimed = await claim(sessions, tenant)
    assert set(claimed) == {ok, retry, refused, mail}
    assert {(a.status, a.tries) for a in claimed.values()} == {("dispatching", 1)}
    assert all(a.dispatched_at is not None for a in claimed.values())
    assert (await claim(sessions, tenant)) == {}  # a claimed row is nobody else's
    before = datetime.now(UTC)
    outbox = await answer(sessions, [
        SendResult(ok, True, provider_ref="msg-ok", account=ACCOUNT),
        SendResult(retry, False, error="provider answered 503", retryable=True),
        SendResult(refused, False, error="provider refused: +8613900000001 is barred"),
        SendResult(mail, False, error="recipient refused: kunde@example.com unknown")])

    rows = await attempts(sessions, tenant)
    assert (rows[ok].status, rows[ok].provider_ref, rows[ok].detail) == ("sent", "msg-ok", None)
    assert (rows[ok].provider_account, rows[retry].provider_account) == (ACCOUNT, None)
    assert (rows[retry].status, rows[retry].tries, rows[retry].provider_ref) == ("sending", 1, None)
    assert rows[retry].next_try_at >= before + timedelta(seconds=POLICY.backoff_base_s ** 1 - 0.5)
    assert rows[retry].detail == "provider answered 503"
    assert (rows[refused].status, rows[mail].status) == ("failed", "failed")
    assert "8613900000001" not in (rows[refused].detail or "") and "0001" in (rows[refused].detail or "")
    assert "kunde@example.com" not in (rows[mail].detail or "")
    told = outcomes(outbox)
    assert set(told) == {ok, refused, mail}  # the retried one is announced only once it is settled
    assert (told[ok].outcome, told[ok].provider_ref, told[ok].channel) == ("sent", "msg-ok", Channel.SMS)
    assert (told[refused].outcome, told[refused].detail) == ("failed", rows[refused].detail)
    assert (told[mail].outcome, told[mail].channel) == ("failed", Channel.EMAIL)
    assert not any("kunde@example.com" in o.event.to_bytes().decode() for o in outbox)

    assert (await claim(sessions, tenant)) == {}  # backing off: not claimable yet
    # the provider's answer for `ok` arrives again (a retried HTTP response): nothing new
    assert await answer(sessions, [SendResult(ok, True, provider_ref="msg-ok")]) == []

    async with sessions() as session:  # the backoff has passed
        await session.execute(text("UPDATE contact_attempts SET next_try_at = now() WHERE contact_id = :id"),
                              {"id": retry})
        await session.commit()
    again = await claim(sessions, tenant)
    assert {cid: (a.status, a.tries) for cid, a in again.items()} == {retry: ("dispatching", 2)}
    outbox = await answer(sessions, [SendResult(retry, False, error="provider answered 503", retryable=True)])
    rows = await attempts(sessions, tenant)
    assert (rows[retry].status, rows[retry].tries) == ("failed", 2)  # POLICY.max_tries reached
    assert {cid: (o.outcome, o.detail) for cid, o in outcomes(outbox).items()} == {
        retry: ("failed", "provider answered 503")}
    assert (await claim(sessions, tenant)) == {}


async def test_interrupted_sms_is_sent_again_and_interrupted_email_never(
        sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    approvals = [approval(tenant, Channel.SMS, 0), approval(tenant, Channel.EMAIL, 1),
                 approval(tenant, Channel.SMS, 2), approval(tenant, Channel.SMS, 3)]
    sms, mail, worn_out, recent = (a.request.contact_id for a in approvals)
    await record(sessions, approvals)
    assert set(await claim(sessions, tenant)) == {sms, mail, worn_out, recent}
    # the process died during the provider calls: the rows stay 'dispatching' past the lease
    async with sessions() as session:
        await session.execute(text(
            "UPDATE contact_attempts SET dispatched_at = now() - interval '1 hour', "
            "tries = CASE WHEN contact_id = :worn THEN 5 ELSE tries END "
            "WHERE tenant = :tenant AND contact_id <> :recent"), {"tenant": tenant, "worn": worn_out, "recent": recent})
        await session.commit()

    async with committed_reading_outbox(sessions) as (uow, outbox):
        recovered = await service.recover_interrupted(uow, lease_s=1800, max_tries=5)
    assert recovered >= 3

    rows = await attempts(sessions, tenant)
    assert (rows[sms].status, rows[sms].tries) == ("sending", 1)
    assert rows[sms].next_try_at <= datetime.now(UTC)
    assert (rows[mail].status, rows[worn_out].status) == ("unknown", "failed")
    assert rows[recent].status == "dispatching"  # still inside its lease: maybe still being sent
    assert "not re-sent" in (rows[mail].detail or "")
    told = outcomes(outbox)
    assert {cid: o.outcome for cid, o in told.items() if cid.startswith(tenant)} == {
        mail: "unknown", worn_out: "failed"}
    assert told[mail].detail == rows[mail].detail

    again = await claim(sessions, tenant)
    assert {cid: (a.status, a.tries) for cid, a in again.items()} == {sms: ("dispatching", 2)}
    outbox = await answer(sessions, [SendResult(sms, True, provider_ref="msg-1")])  # the provider dedupes it
    assert {cid: o.outcome for cid, o in outcomes(outbox).items()} == {sms: "sent"}

    async with sessions() as session:
        await session.execute(text("UPDATE contact_attempts SET dispatched_at = now() - interval '1 hour' "
                                   "WHERE contact_id = :id"), {"id": mail})
        await session.commit()
    async with committed_reading_outbox(sessions) as (uow, outbox):
        await service.recover_interrupted(uow, lease_s=1800, max_tries=5)
    assert not [o for o in outbox if o.event.subject.startswith(tenant)]  # type: ignore[union-attr]
    rows = await attempts(sessions, tenant)
    assert {cid: a.status for cid, a in rows.items()} == {
        sms: "sent", mail: "unknown", worn_out: "failed", recent: "dispatching"}
    assert await claim(sessions, tenant) == {}

    # the interrupted SMTP call did finish after all: the e-mail went out, and the record says so
    outbox = await answer(sessions, [SendResult(mail, True, provider_ref="<m@x>")])
    assert {cid: o.outcome for cid, o in outcomes(outbox).items()} == {mail: "sent"}
    rows = await attempts(sessions, tenant)
    assert (rows[mail].status, rows[mail].provider_ref) == ("sent", "<m@x>")


def receipt(contact_id: str, ref: str, delivered: bool, account: str = ACCOUNT) -> service.Receipt:
    return service.Receipt(contact_id, ref, delivered, account)


async def receive(sessions: Any, receipts: list[service.Receipt], *,
                  legacy_account: str = "legacy") -> tuple[service.ReceiptTally, list[Outboxed]]:
    async with committed_reading_outbox(sessions) as (uow, outbox):
        tally = await service.record_receipts(uow, receipts=receipts, legacy_account=legacy_account)
    return tally, outbox


async def test_delivery_receipts(sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    approvals = [approval(tenant, Channel.SMS, n) for n in range(4)] + [approval(tenant, Channel.EMAIL, 4)]
    delivered, undelivered, overtaken, other, mail = (a.request.contact_id for a in approvals)
    await record(sessions, approvals)
    await claim(sessions, tenant)
    await answer(sessions, [SendResult(delivered, True, provider_ref="m-0", account=ACCOUNT),
                            SendResult(undelivered, True, provider_ref="m-1", account=ACCOUNT),
                            SendResult(other, True, provider_ref="m-3", account=ACCOUNT),
                            SendResult(mail, True, provider_ref="<m-4@example>")])
    # overtaken: the receipt arrives while our own record still says 'dispatching'
    before = await attempts(sessions, tenant)

    hostile = [receipt(other, "m-x", False),                      # not the reference the provider gave us
               receipt(other, "m-3", False, account="acct-2"),   # ours, but sent through another account
               receipt(mail, "<m-4@example>", False),            # not an SMS
               receipt(f"{tenant}-nobody", "m-9", False),         # no such contact
               receipt(other, "m-3", False, account="legacy")]   # the legacy account only covers NULL rows
    tally, outbox = await receive(sessions, hostile)
    assert (tally.updated, tally.ignored, tally.deferred, outbox) == (0, 5, 0, [])
    after = await attempts(sessions, tenant)
    def state(rows: dict[str, ContactAttempt]) -> dict[str, tuple[Any, ...]]:
        return {cid: (a.status, a.provider_ref, a.provider_account, a.detail, a.updated_at) for cid, a in rows.items()}

    assert state(after) == state(before)

    receipts = [receipt(delivered, "m-0", True), receipt(undelivered, "m-1", False), receipt(overtaken, "m-2", True)]
    tally, outbox = await receive(sessions, receipts)
    assert (tally.updated, tally.ignored, tally.deferred) == (2, 0, 1)
    rows = await attempts(sessions, tenant)
    assert {cid: (a.status, a.provider_ref) for cid, a in rows.items()} == {
        delivered: ("delivered", "m-0"), undelivered: ("failed", "m-1"), overtaken: ("dispatching", None),
        other: ("sent", "m-3"), mail: ("sent", "<m-4@example>")}
    assert rows[undelivered].detail == "provider reported the SMS undelivered"
    told = outcomes(outbox)
    assert {cid: (o.outcome, o.provider_ref, o.detail) for cid, o in told.items()} == {
        undelivered: ("failed", "m-1", "provider reported the SMS undelivered")}

    # the same receipts again change nothing; the deferred one is still deferred
    tally, outbox = await receive(sessions, receipts)
    assert (tally.updated, tally.ignored, tally.deferred, outbox) == (0, 2, 1, [])

    # our record of the overtaken send lands; the provider sends its receipt again: now it counts
    outbox = await answer(sessions, [SendResult(overtaken, True, provider_ref="m-2", account=ACCOUNT)])
    assert {cid: o.outcome for cid, o in outcomes(outbox).items()} == {overtaken: "sent"}
    tally, outbox = await receive(sessions, [receipt(overtaken, "m-2", True)])
    assert (tally.updated, outbox) == (1, [])
    assert (await attempts(sessions, tenant))[overtaken].status == "delivered"


async def test_sms_sent_before_accounts_were_stored_take_receipts_from_the_legacy_account(
        sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    approvals = [approval(tenant, Channel.SMS, n) for n in range(2)]
    old, older = (a.request.contact_id for a in approvals)
    await record(sessions, approvals)
    await claim(sessions, tenant)
    await answer(sessions, [SendResult(old, True, provider_ref="m-0"), SendResult(older, True, provider_ref="m-1")])
    assert {a.provider_account for a in (await attempts(sessions, tenant)).values()} == {None}

    tally, _ = await receive(sessions, [receipt(old, "m-0", True, account="acct-other"),
                                        receipt(older, "m-1", True, account="legacy")], legacy_account="legacy")
    assert (tally.updated, tally.ignored) == (1, 1)
    rows = await attempts(sessions, tenant)
    assert (rows[old].status, rows[older].status) == ("sent", "delivered")


async def age(sessions: Any, contact_ids: list[str], *, sent_ago_s: float) -> None:
    """Make these attempts look sent ``sent_ago_s`` ago, their next check due now."""
    async with sessions() as session:
        await session.execute(text(
            "UPDATE contact_attempts SET dispatched_at = now() - make_interval(secs => :ago), next_try_at = now() "
            "WHERE contact_id = ANY(:ids)"), {"ago": sent_ago_s, "ids": contact_ids})
        await session.commit()


async def reconcile_claim(sessions: Any, tenant: str, *, after_s: float = 300) -> dict[str, Any]:
    async with committed(sessions) as uow:
        claimed = await service.claim_for_reconcile(uow, after_s=after_s, limit=1000)
    return {a.contact_id: a for a in claimed if a.tenant == tenant}


async def polled(sessions: Any, claimed: dict[str, Any], reports: list[StatusReport], *,
                 give_up_s: float = 3600) -> tuple[service.ReceiptTally, list[Outboxed]]:
    async with committed_reading_outbox(sessions) as (uow, outbox):
        tally = await service.record_polled(uow, claimed=list(claimed.values()), reports=reports,
                                            give_up_s=give_up_s, legacy_account="legacy")
    return tally, outbox


async def test_the_reconciler_applies_polled_statuses_and_gives_up_after_the_give_up_age(
        sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    approvals = [approval(tenant, Channel.SMS, n) for n in range(7)] + [approval(tenant, Channel.EMAIL, 7)]
    ids = [a.request.contact_id for a in approvals]
    delivered, undelivered, pending, old_pending, old_silent, old_unknown, recent, mail = ids
    await record(sessions, approvals)
    await claim(sessions, tenant)
    await answer(sessions, [SendResult(cid, True, provider_ref=f"m-{n}", account=ACCOUNT)
                            for n, cid in enumerate(ids[:7])] + [SendResult(mail, True, provider_ref="<m@x>")])
    await age(sessions, [delivered, undelivered, pending, mail], sent_ago_s=600)
    await age(sessions, [old_pending, old_silent, old_unknown], sent_ago_s=7200)

    claimed = await reconcile_claim(sessions, tenant)
    # SMS only, sent long enough ago; the recent one and the e-mail are not polled
    assert set(claimed) == {delivered, undelivered, pending, old_pending, old_silent, old_unknown}
    assert await reconcile_claim(sessions, tenant) == {}  # claimed: its next check moved ahead
    reports = [StatusReport(delivered, "delivered"), StatusReport(undelivered, "undelivered"),
               StatusReport(pending, "queued"), StatusReport(old_pending, "sent"),
               StatusReport(old_silent, None, error="provider unreachable: +8613900000001"),
               StatusReport(old_unknown, "unknown")]
    tally, outbox = await polled(sessions, claimed, reports)

    assert (tally.updated, tally.ignored, tally.deferred) == (5, 0, 0)
    rows = await attempts(sessions, tenant)
    assert {cid: a.status for cid, a in rows.items()} == {
        delivered: "delivered", undelivered: "failed", pending: "sent", old_pending: "unknown",
        old_silent: "unknown", old_unknown: "unknown", recent: "sent", mail: "sent"}
    assert "within 3600 s; last: sent" in (rows[old_pending].detail or "")
    assert "no answer (provider unreachable" in (rows[old_silent].detail or "")
    assert "8613900000001" not in (rows[old_silent].detail or "")  # masked
    told = outcomes(outbox)
    assert {cid: (o.outcome, o.provider_ref) for cid, o in told.items()} == {
        undelivered: ("failed", "m-1"), old_pending: ("unknown", "m-3"), old_silent: ("unknown", "m-4"),
        old_unknown: ("unknown", "m-5")}
    assert told[old_pending].detail == rows[old_pending].detail

    # the same poll again (a retried pass) changes nothing and announces nothing
    tally, outbox = await polled(sessions, claimed, reports)
    assert (tally.updated, outbox) == (0, [])
    assert {cid: a.status for cid, a in (await attempts(sessions, tenant)).items()} == {
        cid: a.status for cid, a in rows.items()}

    # the pending one is polled again once its next check is due, not before
    assert await reconcile_claim(sessions, tenant) == {}
    await age(sessions, [pending], sent_ago_s=600)
    assert set(await reconcile_claim(sessions, tenant)) == {pending}

    # a late receipt for one given up on: its real outcome is recorded and announced
    tally, outbox = await receive(sessions, [receipt(old_pending, "m-3", True), receipt(old_silent, "m-4", False)])
    assert tally.updated == 2
    rows = await attempts(sessions, tenant)
    assert (rows[old_pending].status, rows[old_pending].detail, rows[old_silent].status) == (
        "delivered", None, "failed")
    assert {cid: o.outcome for cid, o in outcomes(outbox).items()} == {old_pending: "delivered", old_silent: "failed"}


async def test_reconciler_claims_skip_rows_another_replica_holds(sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    approvals = [approval(tenant, Channel.SMS, n) for n in range(6)]
    ids = [a.request.contact_id for a in approvals]
    await record(sessions, approvals)
    await claim(sessions, tenant)
    await answer(sessions, [SendResult(cid, True, provider_ref=f"m-{n}", account=ACCOUNT) for n, cid in enumerate(ids)])
    first, second = ids[:3], ids[3:]
    await age(sessions, first, sent_ago_s=600)

    # two replicas, their claims in flight at once: the second one's snapshot still shows the first
    # one's rows as due, but they are locked, so it skips them
    async with UnitOfWork(sessions(), source="urn:test") as a, UnitOfWork(sessions(), source="urn:test") as b:
        mine = await service.claim_for_reconcile(a, after_s=300, limit=1000)
        got_a = {r.contact_id for r in mine if r.tenant == tenant}
        await age(sessions, second, sent_ago_s=600)
        theirs = await service.claim_for_reconcile(b, after_s=300, limit=1000)
        got_b = {r.contact_id for r in theirs if r.tenant == tenant}
        await a.commit()
        await b.commit()
    assert (got_a, got_b) == (set(first), set(second))
    assert got_a | got_b == set(ids)



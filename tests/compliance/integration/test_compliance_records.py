"""The records compliance keeps, on the real PostgreSQL: the contact ledger counted per batch in a fixed number of
statements, plan events turned into holds in any order, the complaint clock and its hold, the contact budget."""

from __future__ import annotations

import base64
import itertools
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from services.compliance.db.models import HoldRow
from services.compliance.domain.rules.base import ContactContext, HoldKind, SuppressionKind
from services.compliance.service import context as ctx
from services.compliance.service import records
from shared.contracts.events import Channel, ContactOptOutV1, ContactOutcomeV1, ContactRequestV1, PlanEventV1
from shared.crypto import PiiCipher
from shared.identity import IdentityKeys
from shared.settings import DEV_IDENTITY_KEY, DEV_PII_KEYS
from tests.helpers import statements_on

pytestmark = pytest.mark.integration
CIPHER = PiiCipher(DEV_PII_KEYS, "dev1")
IDENTITY = IdentityKeys(base64.b64decode(DEV_IDENTITY_KEY))
KEYS = ctx.ContactKeys(CIPHER, IDENTITY)
PHONE = "+8613900000001"


def a_phone() -> str:
    """A number no other test calls (the ledger counts per number across tenants)."""
    return f"+86139{uuid.uuid4().int % 10**8:08d}"


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def bk() -> str:
    return "bk1:" + uuid.uuid4().hex


def contact_request(tenant: str, *, account_id: str, customer_id: str, channel: Channel = Channel.CALL,
                    phone: str = PHONE, borrower_key: str | None = None) -> ContactRequestV1:
    return ContactRequestV1(
        tenant=tenant, contact_id=f"c-{uuid.uuid4().hex}", attempt=1, account_id=account_id, customer_id=customer_id,
        channel=channel, treatment_step="d5", segment="standard", days_past_due=5,
        destination=CIPHER.seal(phone, context=tenant), time_zone="Asia/Shanghai", locale="zh-CN",
        template_id="reminder.sms", currency="CNY", overdue_minor=1_000, due_date=date.today() - timedelta(days=5),
        requested_at=datetime.now(UTC), borrower_key=borrower_key)


def outcome(request: ContactRequestV1, kind: str, at: datetime, *, contact_id: str | None = None) -> Any:
    """An outcome as channels reports it; the ledger also takes the dialer's outcomes (no answer, connected…),
    which the v1 contract does not list yet: built without validation."""
    return ContactOutcomeV1.model_construct(
        tenant=request.tenant, contact_id=contact_id or request.contact_id, account_id=request.account_id,
        customer_id=request.customer_id, channel=request.channel, outcome=kind, occurred_at=at, provider_ref=None,
        detail=None, borrower_key=None)


def statements(sessions: Any) -> Any:
    """The SQL statements run on the sessions' engine while the block runs."""
    return statements_on(sessions.kw["bind"].sync_engine)


async def approve(sessions: Any, contexts: list[ContactContext], at: datetime) -> None:
    async with sessions() as session, session.begin():
        await records.record_approvals(_Uow(session), approved=contexts, at=at)


async def report(sessions: Any, outcomes: list[Any]) -> None:
    async with sessions() as session, session.begin():
        await records.record_outcomes(_Uow(session), outcomes=outcomes)


class _Uow:
    """The session, and the events emitted (kept, never written to the outbox)."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.emitted: list[tuple[Any, Any]] = []

    def emit(self, topic: Any, payload: Any, **_: Any) -> None:
        self.emitted.append((topic, payload))


async def contexts_of(sessions: Any, requests: list[ContactRequestV1], **kw: Any) -> list[ContactContext]:
    async with sessions() as session:
        return await ctx.build_contexts(session, requests, keys=KEYS, **kw)


async def test_one_batch_reads_the_ledger_and_every_record_in_a_fixed_number_of_statements(
        sessions: Any, tenant: str) -> None:
    now = datetime.now(UTC)
    borrower, phone = bk(), a_phone()
    first = contact_request(tenant, account_id="A1", customer_id="C1", borrower_key=borrower, phone=phone)
    [first_ctx] = await contexts_of(sessions, [first])
    assert first_ctx.destination_hash == IDENTITY.contact_point_key(channel="call", destination=phone)
    await approve(sessions, [first_ctx], now - timedelta(hours=3))
    # three unanswered calls to the number (one reported twice), one conversation
    calls = [contact_request(tenant, account_id="A1", customer_id="C1", borrower_key=borrower, phone=phone)
             for _ in range(3)]
    await approve(sessions, await contexts_of(sessions, calls), now - timedelta(hours=2))
    await report(sessions, [outcome(c, "no_answer", now - timedelta(hours=2)) for c in calls]
                 + [outcome(calls[0], "no_answer", now - timedelta(hours=2))])
    await report(sessions, [outcome(first, "connected", now - timedelta(hours=3))])
    # the same debtor with another lender (another tenant, another customer id): counted by borrower key
    other_tenant = f"t-{uuid.uuid4().hex[:8]}"
    elsewhere = contact_request(other_tenant, account_id="X9", customer_id="Z9", borrower_key=borrower,
                                phone="+8613700000002")
    await approve(sessions, await contexts_of(sessions, [elsewhere]), now - timedelta(hours=1))
    await report(sessions, [outcome(elsewhere, "right_party_contact", now - timedelta(hours=1))])
    # nine days old: out of the window
    old = contact_request(tenant, account_id="A1", customer_id="C1", borrower_key=borrower, phone=phone)
    await approve(sessions, await contexts_of(sessions, [old]), now - timedelta(days=9))

    again = contact_request(tenant, account_id="A1", customer_id="C1", borrower_key=borrower, phone=phone)
    sms = contact_request(tenant, account_id="A2", customer_id="C1", channel=Channel.SMS)
    stranger = contact_request(tenant, account_id="B1", customer_id="C2", phone="+8613600000003")
    with statements(sessions) as one:
        [solo] = await contexts_of(sessions, [again], now=now)
    batch_requests = [again, sms, stranger, first, *(contact_request(tenant, account_id=f"N{i}", customer_id=f"N{i}")
                                                      for i in range(20))]
    with statements(sessions) as many:
        batch = await contexts_of(sessions, batch_requests, now=now)
    # ledger, holds, suppressions, consents, calendar countries and overrides, agencies
    assert len(one) == len(many) == 7
    assert [c.contact_id for c in batch] == [r.contact_id for r in batch_requests]

    view = solo.ledger
    assert view == batch[0].ledger
    assert len(view.number_unanswered) == 3                      # once per contact, the old one out of the window
    assert len(view.borrower_connects) == 2                      # across lenders, by borrower key
    assert len(view.debt_calls) == 4 and len(view.debt_conversations) == 1
    assert len(view.borrower_contacts[Channel.CALL]) == 5        # this tenant's 4 and the other lender's 1
    assert view.number_unanswered == tuple(sorted(view.number_unanswered))
    assert not view.already_approved and batch[3].ledger.already_approved
    # the SMS request of the same customer sees the customer's calls, not the number's (no SMS ledger yet)
    assert Channel.SMS not in batch[1].ledger.borrower_contacts and len(batch[1].ledger.borrower_connects) == 1
    assert batch[2].ledger == ctx.LedgerView()


async def test_without_keys_the_destination_is_unknown_and_nothing_counts_per_number(sessions: Any,
                                                                                    tenant: str) -> None:
    request = contact_request(tenant, account_id="A1", customer_id="C1")
    async with sessions() as session:
        [context] = await ctx.build_contexts(session, [request])
    assert context.destination_hash in (None, IDENTITY.contact_point_key(channel="call", destination=PHONE))
    assert await contexts_of(sessions, []) == []


def plan_event(tenant: str, plan_id: str, kind: str, at: datetime) -> PlanEventV1:
    return PlanEventV1(tenant=tenant, plan_id=plan_id, account_id="A1", customer_id="C1", kind=kind,  # type: ignore[arg-type]
                       currency="CNY", total_minor=1_000, instalments=[], occurred_at=at)


async def hold_of(sessions: Any, tenant: str, plan_id: str) -> Any:
    async with sessions() as session:
        return (await session.execute(select(HoldRow).where(HoldRow.tenant == tenant,  # type: ignore[arg-type]
                                                            HoldRow.source_ref == plan_id))).scalar_one_or_none()


@pytest.mark.parametrize("end", ["cancelled", "broken", "completed"])
async def test_plan_events_hold_the_account_the_same_way_in_every_order(sessions: Any, tenant: str,
                                                                       end: str) -> None:
    t0 = datetime(2025, 3, 20, 2, 0, tzinfo=UTC)
    ends: list[Any] = []
    for n, order in enumerate(itertools.permutations([("agreed", t0), (end, t0 + timedelta(days=3)),
                                                      ("agreed", t0)])):
        plan_id = f"P-{n}"
        for one_by_one in (True, False):
            plan = f"{plan_id}-{one_by_one}"
            events = [plan_event(tenant, plan, k, at) for k, at in order]
            async with sessions() as session, session.begin():
                if one_by_one:
                    for e in events:
                        await records.record_plan_events(_Uow(session), events=[e])  # type: ignore[arg-type]
                else:
                    await records.record_plan_events(_Uow(session), events=events)  # type: ignore[arg-type]
            hold = await hold_of(sessions, tenant, plan)
            ends.append((hold.kind, hold.starts_at, hold.lifted_at, hold.source_state, hold.lift_reason))
    assert set(ends) == {("plan", t0, t0 + timedelta(days=3), end, f"plan {end}")}

    agreed_only = "P-open"
    async with sessions() as session, session.begin():
        await records.record_plan_events(_Uow(session), events=[plan_event(tenant, agreed_only, "agreed", t0)])  # type: ignore[arg-type]
    [context] = await contexts_of(sessions, [contact_request(tenant, account_id="A1", customer_id="C1")])
    [hold] = [h for h in context.holds if h.ends_at is None]
    assert (hold.kind, hold.account_id, hold.active_at(datetime.now(UTC))) == (HoldKind.PLAN, "A1", True)
    [other_account] = await contexts_of(sessions, [contact_request(tenant, account_id="A2", customer_id="C1")])
    assert other_account.holds == ()


async def test_an_open_complaint_holds_its_account_until_answered_and_keeps_its_clock(sessions: Any,
                                                                                     tenant: str) -> None:
    now = datetime.now(UTC)
    received = now - timedelta(days=2)
    async with sessions() as session, session.begin():
        view = await records.file_complaint(
            _Uow(session), tenant=tenant, actor=tenant, cipher=CIPHER, customer_id="C1", account_id="A1",  # type: ignore[arg-type]
            received_at=received, channel="phone", summary="张三 says the fees are wrong", complexity="complex",
            now=now)
    assert view.row.due_at == received + timedelta(days=30)
    assert view.row.summary != view.summary and "张三" not in view.row.summary  # sealed at rest
    complaint_id = view.row.id
    [context] = await contexts_of(sessions, [contact_request(tenant, account_id="A1", customer_id="C1")])
    assert [(h.kind, h.account_id) for h in context.holds if h.active_at(now)] == [(HoldKind.COMPLAINT, "A1")]

    async with sessions() as session, session.begin():
        with pytest.raises(records.Invalid):
            await records.extend_complaint(_Uow(session), tenant=tenant, cipher=CIPHER, complaint_id=complaint_id,  # type: ignore[arg-type]
                                           days=60, reason="needs the lender's file", requested_by="li",
                                           approved_by="LI")
        with pytest.raises(records.Conflict):
            await records.extend_complaint(_Uow(session), tenant=tenant, cipher=CIPHER, complaint_id=complaint_id,  # type: ignore[arg-type]
                                           days=20, reason="r", requested_by="li", approved_by="wang")
        extended = await records.extend_complaint(_Uow(session), tenant=tenant, cipher=CIPHER,  # type: ignore[arg-type]
                                                  complaint_id=complaint_id, days=60, reason="needs the lender's file",
                                                  requested_by="li", approved_by="wang")
    assert extended.row.due_at == received + timedelta(days=60)
    async with sessions() as session:
        by_status, breaching = await records.complaint_counts(session, now=now + timedelta(days=56))
    assert by_status["open"] >= 1 and breaching >= 1

    async with sessions() as session, session.begin():
        answered = await records.answer_complaint(_Uow(session), tenant=tenant, actor=f"{tenant}:li", cipher=CIPHER,  # type: ignore[arg-type]
                                                  complaint_id=complaint_id, now=now)
        with pytest.raises(records.Conflict):
            await records.answer_complaint(_Uow(session), tenant=tenant, actor=tenant, cipher=CIPHER,  # type: ignore[arg-type]
                                           complaint_id=complaint_id, now=now)
    assert (answered.row.status, answered.summary) == ("answered", "张三 says the fees are wrong")
    [context] = await contexts_of(sessions, [contact_request(tenant, account_id="A1", customer_id="C1")],
                                  now=now + timedelta(seconds=1))
    assert [h for h in context.holds if h.active_at(now + timedelta(seconds=1))] == []


async def test_the_contact_budget_counts_today_against_the_default_caps(sessions: Any, tenant: str) -> None:
    now = datetime.now(UTC)
    borrower = bk()
    phone = a_phone()
    sms = contact_request(tenant, account_id="A1", customer_id="C1", channel=Channel.SMS, borrower_key=borrower,
                          phone=phone)
    calls = [contact_request(tenant, account_id="A1", customer_id="C1", borrower_key=borrower, phone=phone)
             for _ in range(3)]
    await approve(sessions, await contexts_of(sessions, [sms, *calls]), now - timedelta(minutes=5))
    await report(sessions, [outcome(calls[0], "connected", now - timedelta(minutes=4)),
                            outcome(calls[1], "no_answer", now - timedelta(minutes=4)),
                            outcome(calls[2], "no_answer", now - timedelta(minutes=4))])
    async with sessions() as session:
        budget = await records.contact_budget(session, tenant=tenant, customer_id="C1", time_zone="UTC",
                                              now=now + timedelta(seconds=1))
    by_channel = {c.channel: c for c in budget.channels}
    if (now - timedelta(minutes=5)).date() != now.date():
        pytest.skip("the contacts fell on yesterday's UTC day")
    # HOUSE-DUP's default limits SMS only (one per local day); e-mail has no daily cap by default
    assert by_channel[Channel.SMS].left == 0 and by_channel[Channel.EMAIL].left is None
    call_caps = {c.rule_id: (c.used, c.left) for c in by_channel[Channel.CALL].caps}
    assert call_caps == {"CN-CONNECTS": (1, 2), "CN-ATTEMPTS": (2, 4)}
    assert by_channel[Channel.CALL].left == 2 and by_channel[Channel.FIELD].left is None
    assert budget.caps_source == "defaults (no policy published)"


async def test_plan_holds_are_announced_when_they_come_into_force_and_when_lifted(sessions: Any,
                                                                                 tenant: str) -> None:
    t0 = datetime(2025, 3, 20, 2, 0, tzinfo=UTC)
    async with sessions() as session, session.begin():
        uow = _Uow(session)
        await records.record_plan_events(uow, events=[plan_event(tenant, "P1", "agreed", t0)])  # type: ignore[arg-type]
        await records.record_plan_events(uow, events=[plan_event(tenant, "P1", "agreed", t0)])  # type: ignore[arg-type]
        await records.record_plan_events(uow, events=[plan_event(tenant, "P1", "broken", t0 + timedelta(days=9))])  # type: ignore[arg-type]
        await records.record_plan_events(uow, events=[plan_event(tenant, "P2", "cancelled", t0),  # type: ignore[arg-type]
                                                      plan_event(tenant, "P2", "agreed", t0)])
    assert [(topic.name, p.action, p.kind, p.account_id, p.occurred_at) for topic, p in uow.emitted] == [
        ("compliance.hold-changed.v1", "placed", "plan", "A1", t0),
        ("compliance.hold-changed.v1", "lifted", "plan", "A1", t0 + timedelta(days=9))]  # P2 never held


async def test_an_opt_out_reply_suppresses_the_contact_point(sessions: Any, tenant: str) -> None:
    key = IDENTITY.contact_point_key(channel="sms", destination=a_phone())
    opt_out = ContactOptOutV1(tenant=tenant, customer_id="C1", channel=Channel.SMS, destination_key=key,
                              keyword="TD", message_id="m-1", received_at=datetime.now(UTC), source="sms-reply")
    async with sessions() as session, session.begin():
        await records.record_opt_outs(_Uow(session), opt_outs=[opt_out])  # type: ignore[arg-type]
    [context] = await contexts_of(sessions, [contact_request(tenant, account_id="A1", customer_id="C1",
                                                             channel=Channel.SMS)])
    [suppression] = context.suppressions
    assert (suppression.kind, suppression.channel, suppression.destination_hash) == (
        SuppressionKind.OPT_OUT, Channel.SMS, key)


async def ledger_row(sessions: Any, tenant: str, contact_id: str) -> Any:
    from services.compliance.db.models import ContactLedgerEntry as L
    async with sessions() as session:
        return (await session.execute(select(L.outcome, L.outcome_at, L.approved_at, L.occurred_at, L.borrower_key,
                                             L.destination_key)
                                      .where(L.tenant == tenant, L.contact_id == contact_id))).all()  # type: ignore[arg-type]


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
async def test_an_attempt_is_one_ledger_row_that_ends_the_same_in_every_order(sessions: Any, tenant: str,
                                                                              order: tuple[int, ...]) -> None:
    """The approval and three outcomes of one contact, delivered in every order (the last two in one batch,
    one of them twice): one row, approved at the approval, its newest outcome, its first instant, the
    contact point of the approval."""
    now = datetime.now(UTC).replace(microsecond=0)
    request = contact_request(tenant, account_id="A1", customer_id="C1", borrower_key=bk(), phone=a_phone())
    [context] = await contexts_of(sessions, [request])
    approved_at = now - timedelta(minutes=10)
    events: list[Any] = [("approve", approved_at),
                         ("report", outcome(request, "sent", now - timedelta(minutes=9))),
                         ("report", outcome(request, "delivered", now - timedelta(minutes=8))),
                         ("report", outcome(request, "failed", now - timedelta(minutes=8)))]  # same instant: by name
    steps = [events[i] for i in order]
    for kind, what in steps[:2]:
        if kind == "approve":
            await approve(sessions, [context], what)
        else:
            await report(sessions, [what, what])
    rest = [what for kind, what in steps[2:] if kind == "report"]
    if any(kind == "approve" for kind, _ in steps[2:]):
        await approve(sessions, [context], approved_at)
    await report(sessions, rest + rest[:1])
    [row] = await ledger_row(sessions, tenant, request.contact_id)
    assert (row.outcome, row.outcome_at, row.approved_at, row.occurred_at) == (
        "failed", now - timedelta(minutes=8), approved_at, approved_at)
    assert row.destination_key == context.destination_hash and row.borrower_key == request.borrower_key

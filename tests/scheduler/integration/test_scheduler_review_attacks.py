"""Review attacks on the scheduler's new consumer paths (record_segmented with negative DPD, record_outcomes with
``_react`` and ``_record_promises``, check_promises, apply_plan_events, record_holds), on the real PostgreSQL.

Each test reproduced a bug found in review (now fixed) or adds coverage of what held:
order independence under permutations, replays that must not make a second retry/fallback or contact request,
and hostile payloads that pass the contract and must not break a handler."""

from __future__ import annotations

import copy
import itertools
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from services.scheduler import service
from services.scheduler.db.models import Treatment, TreatmentComplaint, TreatmentPromise, TreatmentStep
from services.scheduler.domain.strategies.builtin import DOCUMENT as BUILTIN_DOCUMENT
from services.scheduler.domain.timeline import contact_id_for
from services.scheduler.service import experiments, strategies
from shared.contracts import topics
from shared.contracts.events import (
    AccountSegmentedV1,
    ContactOutcomeV1,
    ContactRequestV1,
    HoldChangedV1,
    PaymentReceivedV1,
    PlanEventV1,
)
from shared.crypto import PiiCipher
from shared.domain import DomainError
from shared.messaging import build_event
from shared.settings import DEV_PII_KEYS
from tests.helpers import committed, committed_reading_outbox

pytestmark = pytest.mark.integration
CIPHER = PiiCipher(DEV_PII_KEYS, "dev1")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def new_tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def today() -> date:
    return datetime.now(SHANGHAI).date()


def snapshot(tenant: str, *, dpd: int, due: date, as_of: datetime, segment: str = "standard",
             overdue: int = 10_000, phone: bool = True, email: bool = True) -> AccountSegmentedV1:
    contact: dict[str, Any] = {"name": CIPHER.seal("n", context=tenant), "time_zone": "Asia/Shanghai"}
    if phone:
        contact["phone"] = CIPHER.seal("+8613900000001", context=tenant)
    if email:
        contact["email"] = CIPHER.seal("a@example.com", context=tenant)
    return AccountSegmentedV1(
        tenant=tenant, account_id="A1", customer_id="C1", segment=segment, dpd_bucket="x",  # type: ignore[arg-type]
        days_past_due=dpd, due_date=due, currency="CNY", overdue_minor=overdue, outstanding_minor=overdue * 2,
        reason="seg", contact=contact, as_of=as_of)  # type: ignore[arg-type]


def outcome(tenant: str, contact_id: str, kind: str, at: datetime, *, channel: str = "sms",
            promise: dict[str, Any] | None = None) -> ContactOutcomeV1:
    return ContactOutcomeV1(tenant=tenant, contact_id=contact_id, account_id="A1", customer_id="C1",
                            channel=channel, outcome=kind, occurred_at=at, promise=promise)  # type: ignore[arg-type]


def payment(tenant: str, amount: int, at: datetime, *, n: int = 1, currency: str = "CNY") -> PaymentReceivedV1:
    return PaymentReceivedV1(tenant=tenant, account_id="A1", customer_id="C1", payment_id=f"PAY-{n}",
                             amount_minor=amount, currency=currency, paid_at=at)


def plan(tenant: str, kind: str, at: datetime) -> PlanEventV1:
    return PlanEventV1(tenant=tenant, plan_id="P-1", account_id="A1", customer_id="C1", kind=kind,  # type: ignore[arg-type]
                       currency="CNY", total_minor=10_000, instalments=[], occurred_at=at)


def hold(tenant: str, hold_id: str, at: datetime) -> HoldChangedV1:
    return HoldChangedV1(tenant=tenant, hold_id=hold_id, customer_id="C1", account_id="A1", kind="complaint",
                         action="placed", reason="complained", starts_at=at, occurred_at=at)


async def apply(uow: Any, fact: Any, grace: int = 0) -> None:
    if isinstance(fact, AccountSegmentedV1):
        await service.record_segmented(uow, segmented=[(fact, build_event(
            topics.ACCOUNT_SEGMENTED, fact, tenant=fact.tenant, customer_id="C1", source="urn:test"))])
    elif isinstance(fact, ContactOutcomeV1):
        await service.record_outcomes(uow, outcomes=[fact], promise_grace_days=grace)
    elif isinstance(fact, PaymentReceivedV1):
        await service.apply_payments(uow, payments=[fact])
    elif isinstance(fact, PlanEventV1):
        await service.apply_plan_events(uow, plan_events=[fact])
    elif isinstance(fact, HoldChangedV1):
        await experiments.record_holds(uow, holds=[fact])
    elif fact == "check":
        await service.check_promises(uow)
    else:
        raise AssertionError(fact)


async def deliver(sessions: Any, *facts: Any, grace: int = 0) -> list[ContactRequestV1]:
    """One consumer batch (one transaction); returns the contact requests it emitted."""
    async with committed_reading_outbox(sessions) as (uow, written):
        for fact in facts:
            await apply(uow, fact, grace)
    return [ContactRequestV1.model_validate(w.event.data) for w in written if w.topic == topics.CONTACT_REQUESTED.name]


async def state(sessions: Any, tenant: str) -> dict[str, Any]:
    async with sessions() as session:
        t = (await session.execute(select(Treatment).where(Treatment.tenant == tenant))).scalars().one_or_none()
        steps = (await session.execute(select(TreatmentStep).where(TreatmentStep.tenant == tenant))).scalars().all()
        promised = (await session.execute(select(TreatmentPromise).where(
            TreatmentPromise.tenant == tenant))).scalars().all()
    return {"status": None if t is None else t.status, "overdue": None if t is None else t.overdue_minor,
            "reason": None if t is None else t.status_reason,
            "steps": {s.step: s.status for s in steps},
            "promises": {p.promise_id: (p.amount_minor, p.currency, p.due_on, p.check_at) for p in promised}}


def cid(tenant: str, step: str, due: date) -> str:
    return contact_id_for(tenant=tenant, account_id="A1", step=step, due_date=due)


async def use_strategy(sessions: Any, tenant: str, document: dict[str, Any], name: str = "attack") -> None:
    async with committed(sessions) as uow:
        published = await strategies.publish_strategy(uow.session, tenant=tenant, name=name, document=document,
                                                      created_by="test", reason="test")
        await strategies.publish_assignment(uow.session, tenant=tenant, created_by="test", reason="test", document={
            "champion": {"strategy": name, "version": published.version}})


def retrying() -> dict[str, Any]:
    """Standard 1-15: a reminder SMS retried once 5 minutes after a failure, then an e-mail fallback; prime 1-15 has
    another step id (a segment change leaves a retry of the standard step without its step)."""
    doc = copy.deepcopy(BUILTIN_DOCUMENT)
    doc["segments"]["standard"]["1-15"] = [
        {"id": "nudge", "day": 1, "channel": "sms", "template": "reminder.sms", "retries": 1,
         "retry_after_minutes": 5, "fallback": [{"channel": "email", "template": "reminder.email"}],
         "fallback_after_minutes": 0}]
    doc["segments"]["prime"]["1-15"] = [{"id": "mail", "day": 1, "channel": "email", "template": "reminder.email"}]
    return doc


# --- poison payloads that pass the contract -------------------------------------------------------------------------


async def test_a_promise_due_on_the_last_representable_day_does_not_break_the_outcome_handler(sessions: Any) -> None:
    tenant, now = new_tenant(), datetime.now(UTC)
    due = today() - timedelta(days=5)
    await deliver(sessions, snapshot(tenant, dpd=5, due=due, as_of=now - timedelta(hours=1)))
    reminder = cid(tenant, "reminder", due)
    try:
        await deliver(sessions, outcome(tenant, reminder, "right_party_contact", now, channel="call",
                                        promise={"amount_minor": 500, "currency": "CNY", "due_on": date(9999, 12, 31)}),
                      grace=1)
    except DomainError:
        return  # refusing it with a reason is fine
    assert (await state(sessions, tenant))["steps"]["reminder"] == "done"


async def test_a_promise_fifty_years_ahead_or_long_past_and_an_unknown_contact_do_not_break_the_handler(
        sessions: Any) -> None:
    """What passes the contract and is merely odd is handled: a promise due before it was made, or more than a year
    after (it would pause collection for decades), is not kept as a promise; the calls' outcomes still count."""
    tenant, now = new_tenant(), datetime.now(UTC)
    due = today() - timedelta(days=5)
    await deliver(sessions, snapshot(tenant, dpd=5, due=due, as_of=now - timedelta(hours=1)))
    await deliver(sessions,
                  outcome(tenant, "no-such-contact", "connected", now, channel="call",
                          promise={"amount_minor": 500, "currency": "CNY", "due_on": date(1900, 1, 1)}),
                  outcome(tenant, "another-unknown", "failed", now),
                  outcome(tenant, cid(tenant, "reminder", due), "right_party_contact", now, channel="call",
                          promise={"amount_minor": 500, "currency": "CNY",
                                   "due_on": today() + timedelta(days=365 * 50)}))
    await deliver(sessions, "check")
    s = await state(sessions, tenant)
    assert s["status"] == "active" and len(s["promises"]) == 0
    assert s["steps"]["reminder"] == "done"


async def test_a_promise_in_another_currency_than_the_account_does_not_pause_it(sessions: Any) -> None:
    tenant, now = new_tenant(), datetime.now(UTC)
    due = today() - timedelta(days=5)
    await deliver(sessions, snapshot(tenant, dpd=5, due=due, as_of=now - timedelta(hours=1)))
    try:
        await deliver(sessions, outcome(tenant, cid(tenant, "reminder", due), "right_party_contact", now,
                                        channel="call", promise={"amount_minor": 5_000, "currency": "USD",
                                                                 "due_on": today() + timedelta(days=3)}))
    except DomainError:
        return
    assert (await state(sessions, tenant))["status"] == "active"


# --- promises: time zones, cycles, ties -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["due-date morning in Shanghai", "early-warning call before the due date"])
async def test_a_promise_made_in_the_current_cycle_pauses_the_treatment(sessions: Any, case: str) -> None:
    tenant, now = new_tenant(), datetime.now(UTC)
    if case == "due-date morning in Shanghai":
        due = today() - timedelta(days=5)
        await deliver(sessions, snapshot(tenant, dpd=5, due=due, as_of=now - timedelta(hours=1)))
        step = "reminder"
        made = datetime.combine(due, time(7, 0), tzinfo=SHANGHAI).astimezone(UTC)  # 23:00 UTC the day before
    else:
        due = today() + timedelta(days=3)
        await deliver(sessions, snapshot(tenant, dpd=-3, due=due, as_of=now - timedelta(hours=1),
                                         segment="high_risk"))
        step = "pre-due"
        made = now
    assert (await state(sessions, tenant))["steps"] == {step: "requested"}
    await deliver(sessions, outcome(tenant, cid(tenant, step, due), "right_party_contact", made, channel="call",
                                    promise={"amount_minor": 5_000, "currency": "CNY",
                                             "due_on": today() + timedelta(days=3)}))
    assert (await state(sessions, tenant))["status"] == "paused"


async def test_two_reports_of_one_call_at_the_same_time_keep_the_same_promise_whatever_the_order(
        sessions: Any) -> None:
    ends = []
    for order in itertools.permutations([5_000, 7_000]):
        tenant, now = new_tenant(), datetime.now(UTC).replace(microsecond=0)
        due = today() - timedelta(days=5)
        await deliver(sessions, snapshot(tenant, dpd=5, due=due, as_of=now - timedelta(hours=1)))
        contact = cid(tenant, "reminder", due)
        for amount in order:
            await deliver(sessions, outcome(tenant, contact, "right_party_contact", now, channel="call", promise={
                "amount_minor": amount, "currency": "CNY", "due_on": today() + timedelta(days=3)}))
        ends.append([v[0] for v in (await state(sessions, tenant))["promises"].values()])
    assert ends[0] == ends[1]


async def test_a_promise_deadline_does_not_depend_on_whether_the_treatment_arrived_first(sessions: Any) -> None:
    deadlines = []
    for first in ("snapshot", "promise"):
        tenant, now = new_tenant(), datetime.now(UTC)
        due = today() - timedelta(days=5)
        facts = {"snapshot": snapshot(tenant, dpd=5, due=due, as_of=now - timedelta(hours=1)),
                 "promise": outcome(tenant, cid(tenant, "reminder", due), "right_party_contact", now, channel="call",
                                    promise={"amount_minor": 5_000, "currency": "CNY",
                                             "due_on": today() + timedelta(days=3)})}
        for name in (first, "promise" if first == "snapshot" else "snapshot"):
            await deliver(sessions, facts[name], grace=1)
        s = await state(sessions, tenant)
        assert s["status"] == "paused"
        [(_, _, _, check_at)] = s["promises"].values()
        deadlines.append(check_at)
    assert deadlines[0] == deadlines[1]


# --- reactions: replays, corrections, batches -----------------------------------------------------------------------


async def test_a_failure_and_a_promise_in_one_batch_request_no_fallback(sessions: Any) -> None:
    tenant, now = new_tenant(), datetime.now(UTC)
    due = today() - timedelta(days=5)
    await deliver(sessions, snapshot(tenant, dpd=5, due=due, as_of=now - timedelta(hours=2)))
    promise = outcome(tenant, "agent-call-1", "right_party_contact", now - timedelta(minutes=50), channel="call",
                      promise={"amount_minor": 5_000, "currency": "CNY", "due_on": today() + timedelta(days=3)})
    failed = outcome(tenant, cid(tenant, "reminder", due), "failed", now - timedelta(minutes=40))
    # one consumer batch: the runner hands the handler every outcome of the batch in one call
    requested = await _one_batch_of_outcomes(sessions, [failed, promise])
    assert (await state(sessions, tenant))["status"] == "paused"
    assert [r.treatment_step for r in requested] == []


async def _one_batch_of_outcomes(sessions: Any, outcomes: list[ContactOutcomeV1]) -> list[ContactRequestV1]:
    async with committed_reading_outbox(sessions) as (uow, written):
        await service.record_outcomes(uow, outcomes=outcomes, promise_grace_days=0)
    return [ContactRequestV1.model_validate(w.event.data) for w in written if w.topic == topics.CONTACT_REQUESTED.name]


async def test_a_replayed_failure_makes_one_retry_then_one_fallback_and_one_request_each(sessions: Any) -> None:
    tenant, now = new_tenant(), datetime.now(UTC)
    await use_strategy(sessions, tenant, retrying())
    due = today() - timedelta(days=5)
    await deliver(sessions, snapshot(tenant, dpd=5, due=due, as_of=now - timedelta(hours=2)))
    failed = outcome(tenant, cid(tenant, "nudge", due), "failed", now - timedelta(minutes=30))
    first = await _one_batch_of_outcomes(sessions, [failed, failed])  # duplicated within the batch
    again = await _one_batch_of_outcomes(sessions, [failed, failed])  # the batch replayed
    assert [r.treatment_step for r in first] == ["nudge/retry-1"] and again == []
    retry_failed = outcome(tenant, cid(tenant, "nudge/retry-1", due), "no_answer", now - timedelta(minutes=10))
    second = await _one_batch_of_outcomes(sessions, [retry_failed])
    replay = await _one_batch_of_outcomes(sessions, [retry_failed, failed])
    assert [r.treatment_step for r in second] == ["nudge/fallback-1"] and replay == []
    assert (await state(sessions, tenant))["steps"] == {"nudge": "failed", "nudge/retry-1": "failed",
                                                       "nudge/fallback-1": "requested"}


ORDERS = list(itertools.permutations(["failed", "corrected", "failed-again"]))


@pytest.mark.parametrize("order", ORDERS, ids=["-".join(o) for o in ORDERS])
async def test_a_corrected_failure_leaves_no_live_retry_whatever_the_order(sessions: Any,
                                                                         order: tuple[str, ...]) -> None:
    tenant, now = new_tenant(), datetime.now(UTC)
    await use_strategy(sessions, tenant, retrying())
    due = today() - timedelta(days=5)
    await deliver(sessions, snapshot(tenant, dpd=5, due=due, as_of=now - timedelta(hours=2)))
    contact = cid(tenant, "nudge", due)
    facts = {"failed": outcome(tenant, contact, "failed", now - timedelta(minutes=3)),
             "corrected": outcome(tenant, contact, "delivered", now - timedelta(minutes=2)),
             "failed-again": outcome(tenant, contact, "failed", now - timedelta(minutes=3))}
    requests = []
    for name in order:
        requests += await deliver(sessions, facts[name])
    s = await state(sessions, tenant)
    assert s["steps"]["nudge"] == "done" and requests == []
    # the retry, when made before the correction arrived, is cancelled; never live (a cancelled row may remain)
    assert s["steps"].get("nudge/retry-1", "cancelled") == "cancelled"


async def test_an_outcome_for_a_retry_of_a_step_its_strategy_no_longer_has_is_handled(sessions: Any) -> None:
    tenant, now = new_tenant(), datetime.now(UTC)
    await use_strategy(sessions, tenant, retrying())
    due = today() - timedelta(days=5)
    await deliver(sessions, snapshot(tenant, dpd=5, due=due, as_of=now - timedelta(hours=2)))
    await deliver(sessions, outcome(tenant, cid(tenant, "nudge", due), "failed", now - timedelta(minutes=30)))
    # the account moves to prime, whose cell has no "nudge": the retry's outcome finds no step to react from
    await deliver(sessions, snapshot(tenant, dpd=6, due=due, as_of=now - timedelta(minutes=20), segment="prime"))
    requested = await deliver(sessions, outcome(tenant, cid(tenant, "nudge/retry-1", due), "failed",
                                                now - timedelta(minutes=10)))
    assert requested == []
    assert (await state(sessions, tenant))["steps"] == {"nudge": "failed", "nudge/retry-1": "failed",
                                                       "mail": "requested"}


# --- order independence with negative DPD, payments, plans, holds, promises -----------------------------------------


def _facts(tenant: str, due: date, now: datetime) -> dict[str, Any]:
    return {
        "pre-due": snapshot(tenant, dpd=-3, due=due, as_of=now - timedelta(days=8), segment="high_risk"),
        "overdue": snapshot(tenant, dpd=5, due=due, as_of=now - timedelta(hours=3), segment="high_risk"),
        "payment": payment(tenant, 4_000, now - timedelta(hours=2)),
        "plan": plan(tenant, "broken", now - timedelta(hours=1)),
        "hold": hold(tenant, "H-1", now - timedelta(minutes=30)),
    }


async def test_negative_dpd_snapshots_payments_plans_and_holds_end_the_same_in_every_order(sessions: Any) -> None:
    now = datetime.now(UTC)
    due = today() - timedelta(days=5)
    ends = {}
    for order in itertools.permutations(["pre-due", "overdue", "payment", "plan", "hold"]):
        tenant = new_tenant()
        facts = _facts(tenant, due, now)
        for name in order:
            await deliver(sessions, facts[name])
        await deliver(sessions, *facts.values())  # everything replayed in one batch changes nothing
        s = await state(sessions, tenant)
        async with sessions() as session:
            complaints = len((await session.execute(select(TreatmentComplaint).where(
                TreatmentComplaint.tenant == tenant))).scalars().all())
        # the pre-due reminder is made only when its snapshot came first (it cannot be unmade): compare the rest
        ends[order] = (s["status"], s["overdue"], s["reason"],
                       {k: v for k, v in s["steps"].items() if k != "pre-due"}, complaints)
    assert len(set(map(repr, ends.values()))) == 1, ends
    assert next(iter(ends.values()))[:2] == ("active", 6_000)


PROMISE_ORDERS = list(itertools.permutations(["snapshot", "promise", "payment", "check"]))


@pytest.mark.parametrize("order", PROMISE_ORDERS[::3], ids=["-".join(o) for o in PROMISE_ORDERS[::3]])
async def test_a_kept_promise_and_its_payment_end_the_same_in_any_order(sessions: Any, order: tuple[str, ...]) -> None:
    tenant, now = new_tenant(), datetime.now(UTC)
    due = today() - timedelta(days=5)
    facts = {"snapshot": snapshot(tenant, dpd=5, due=due, as_of=now - timedelta(hours=3)),
             "promise": outcome(tenant, cid(tenant, "reminder", due), "right_party_contact",
                                now - timedelta(hours=2), channel="call",
                                promise={"amount_minor": 3_000, "currency": "CNY",
                                         "due_on": today() - timedelta(days=2)}),
             "payment": payment(tenant, 3_000, now - timedelta(hours=1)), "check": "check"}
    for name in order:
        await deliver(sessions, facts[name])
    await deliver(sessions, "check")
    s = await state(sessions, tenant)
    assert (s["status"], s["overdue"]) == ("active", 7_000)

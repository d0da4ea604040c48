"""Strategies and experiments over REST on the real database (services/scheduler/api/strategies.py): versions,
refusals that store nothing, roles, tenancy, champion and challenger assignment recorded on the steps, promotion,
reactions to outcomes, and the timeline dry run."""

from __future__ import annotations

import copy
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from services.scheduler import service
from services.scheduler.db.models import Strategy, StrategyAssignment, TreatmentStep
from services.scheduler.domain.strategies.builtin import DOCUMENT as BUILTIN
from services.scheduler.domain.strategies.experiments import point
from services.scheduler.service import experiments
from shared.audit import AuditEntry
from shared.contracts import CloudEvent, topics
from shared.contracts.events import (
    AccountSegmentedV1,
    ContactOutcomeV1,
    HoldChangedV1,
    PaymentReceivedV1,
    PlanEventV1,
)
from shared.messaging import build_event
from tests.api.support import CIPHER, ServiceApi, Tenant, assert_problem, unique
from tests.api.test_api_access import bearer, issue

pytestmark = pytest.mark.integration


def email_first() -> dict[str, Any]:
    """The built-in strategy with prime customers' first reminder by e-mail at 10:00, falling back to SMS."""
    doc = copy.deepcopy(BUILTIN)
    doc["description"] = "e-mail first, at 10:00, for prime customers"
    doc["segments"]["prime"]["1-15"] = [{"id": "mail-first", "day": 1, "at": "10:00", "channel": "email",
                                         "template": "reminder.email", "fallback": [
                                             {"channel": "sms", "template": "reminder.sms"}]}]
    return doc


def sms_retry() -> dict[str, Any]:
    """Standard customers: an SMS reminder retried once after 5 minutes, then an e-mail 10 minutes later."""
    doc = copy.deepcopy(BUILTIN)
    doc["segments"]["standard"]["1-15"] = [{"id": "nudge", "day": 1, "channel": "sms", "template": "reminder.sms",
                                            "retries": 1, "retry_after_minutes": 5, "fallback_after_minutes": 10,
                                            "fallback": [{"channel": "email", "template": "reminder.email"}]}]
    return doc


def segmented(tenant: Tenant, account_id: str, *, segment: str = "standard", dpd: int = 5,
              customer: str | None = None) -> tuple[AccountSegmentedV1, CloudEvent]:
    payload = AccountSegmentedV1(
        tenant=tenant.id, account_id=account_id, customer_id=customer or f"C-{account_id}", segment=segment,
        dpd_bucket="1-15", days_past_due=dpd, due_date=date.today() - timedelta(days=dpd), currency="CNY",
        overdue_minor=12_300, outstanding_minor=50_000, reason="test",
        contact={"name": CIPHER.seal("王五", context=tenant.id),
                 "phone": CIPHER.seal("+8613900000001", context=tenant.id),
                 "email": CIPHER.seal("wang@example.com", context=tenant.id),
                 "address": CIPHER.seal("上海市浦东新区1号", context=tenant.id), "time_zone": "Asia/Shanghai"})
    return payload, build_event(topics.ACCOUNT_SEGMENTED, payload, tenant=tenant.id,
                                customer_id=payload.customer_id, source="urn:test")


async def seed(api: ServiceApi, items: list[tuple[AccountSegmentedV1, CloudEvent]]) -> None:
    async with api.runtime.units() as uow:
        await service.record_segmented(uow, segmented=items)
        await uow.commit()


async def steps_of(api: ServiceApi, tenant: Tenant, account: str | None = None) -> list[TreatmentStep]:
    query = select(TreatmentStep).where(TreatmentStep.tenant == tenant.id)
    if account:
        query = query.where(TreatmentStep.account_id == account)
    return list(await api.all(query.order_by(TreatmentStep.created_at)))


async def publish(api: ServiceApi, tenant: Tenant, name: str, document: dict[str, Any],
                  headers: dict[str, str] | None = None) -> Any:
    return await api.client.put(f"/v1/strategies/{name}", json={"document": document, "reason": "test"},
                                headers=headers or tenant.headers)


async def assign(api: ServiceApi, tenant: Tenant, body: dict[str, Any]) -> Any:
    return await api.client.put("/v1/strategy-assignment", json={**body, "reason": "test"}, headers=tenant.headers)


async def test_strategies_are_versioned_readable_and_private_to_their_tenant(
        scheduler: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    first = await publish(scheduler, tenant_a, "email-first", email_first())
    assert first.status_code == 201, first.text
    assert (first.json()["name"], first.json()["version"]) == ("email-first", 1)
    second = await publish(scheduler, tenant_a, "email-first", BUILTIN)
    assert second.json()["version"] == 2
    versions = (await scheduler.client.get("/v1/strategies/email-first/versions", headers=tenant_a.headers)).json()
    assert [v["version"] for v in versions] == [2, 1]
    one = (await scheduler.client.get("/v1/strategies/email-first/versions/1", headers=tenant_a.headers)).json()
    assert one["document"]["segments"]["prime"]["1-15"][0]["id"] == "mail-first"
    builtin = await scheduler.client.get("/v1/strategies/builtin/versions/1", headers=tenant_b.headers)
    assert builtin.json()["document"] == BUILTIN
    # tenant b sees none of tenant a's, and cannot assign them
    assert_problem(await scheduler.client.get("/v1/strategies/email-first/versions/1", headers=tenant_b.headers), 404)
    listed = (await scheduler.client.get("/v1/strategies", headers=tenant_b.headers)).json()
    assert [(s["name"], s["version"]) for s in listed] == [("builtin", 1)]
    refused = await assign(scheduler, tenant_b, {"champion": {"strategy": "email-first", "version": 1}})
    assert "no strategy email-first@1" in str(assert_problem(refused, 422)["errors"])


@pytest.mark.parametrize(("change", "says"), [
    (lambda d: d["segments"].pop("prime"), "incomplete: segment 'prime' is missing"),
    (lambda d: d["segments"]["standard"].pop("16-30"), "incomplete: standard x 16-30 has no steps"),
    (lambda d: d["segments"]["standard"].__setitem__("31-60", []), "incomplete: standard x 31-60 needs"),
    (lambda d: d["segments"]["standard"]["1-15"][0].__setitem__("day", 20), "unreachable"),
    (lambda d: d["segments"]["standard"]["1-15"][0].__setitem__("at", "22:30"), "contact hours"),
    (lambda d: d["segments"]["standard"]["16-30"][0].update(retries=3), "3 a day"),
    (lambda d: d["segments"]["standard"]["1-15"].append({"id": "x", "day": 1, "channel": "sms",
                                                         "template": "reminder.sms"}), "'reminder' is unreachable"),
    (lambda d: d["segments"]["standard"]["1-15"][0].__setitem__("channel", "pigeon"), "pigeon"),
    (lambda d: d["segments"]["standard"]["16-30"][0].__setitem__("channel", "field"), "HOUSE-FIELD"),
    (lambda d: d.__setitem__("colour", "blue"), "unknown field 'colour'"),
])
async def test_a_strategy_that_cannot_be_used_is_refused_with_every_reason_and_nothing_stored(
        scheduler: ServiceApi, tenant_a: Tenant, change: Any, says: str) -> None:
    document = copy.deepcopy(BUILTIN)
    change(document)
    body = assert_problem(await publish(scheduler, tenant_a, "bad", document), 422)
    assert any(says in e["msg"] for e in body["errors"]), body
    assert await scheduler.all(select(Strategy).where(Strategy.tenant == tenant_a.id)) == []
    checked = (await scheduler.client.post("/v1/strategy-checks", json={"document": document},
                                           headers=tenant_a.headers)).json()
    assert checked["valid"] is False and any(says in e for e in checked["errors"])


async def test_only_a_strategist_publishes_assigns_and_promotes(scheduler: ServiceApi, infra: Any,
                                                                tenant_a: Tenant) -> None:
    agent = bearer(await issue(infra, tenant_a.id, {"agent", "partner", "compliance"}))
    assert_problem(await publish(scheduler, tenant_a, "mine", BUILTIN, headers=agent), 403)
    assert_problem(await scheduler.client.put("/v1/strategy-assignment", headers=agent, json={
        "champion": {"strategy": "builtin", "version": 1}, "reason": "x"}), 403)
    assert_problem(await scheduler.client.post("/v1/strategy-assignment/promote", headers=agent,
                                               json={"arm": "a", "reason": "x"}), 403)
    strategist = bearer(await issue(infra, tenant_a.id, {"strategist"}, principal="strategist-zhao"))
    made = await publish(scheduler, tenant_a, "mine", BUILTIN, headers=strategist)
    assert made.status_code == 201 and made.json()["created_by"] == "strategist-zhao"
    [row] = await scheduler.all(select(AuditEntry).where(AuditEntry.tenant == tenant_a.id))
    assert (row.principal, row.action, row.subject, row.reason) == ("strategist-zhao", "strategy.publish",
                                                                    "mine@1", "test")


async def test_a_challenger_gets_its_share_of_borrowers_deterministically_and_the_steps_record_the_arm(
        scheduler: ServiceApi, tenant_a: Tenant) -> None:
    assert (await publish(scheduler, tenant_a, "email-first", email_first())).status_code == 201
    started = await assign(scheduler, tenant_a, {
        "champion": {"strategy": "builtin", "version": 1}, "experiment": "exp-1",
        "challengers": [{"arm": "email-first", "strategy": "email-first", "version": 1, "share_bp": {"prime": 5000}}]})
    assert started.status_code == 201, started.text
    accounts = [unique("ACC") for _ in range(60)]
    await seed(scheduler, [segmented(tenant_a, a, segment="prime") for a in accounts])
    steps = {s.account_id: s for s in await steps_of(scheduler, tenant_a)}
    arms = Counter(s.arm for s in steps.values())
    for account, step in steps.items():
        expected = "email-first" if point("exp-1", f"customer:C-{account}") < 5000 else "champion"
        assert step.arm == expected and step.experiment == "exp-1"
        if expected == "email-first":
            # the challenger's step: e-mail at 10:00 Shanghai time on DPD 1 (passed: due now)
            assert (step.step, step.channel, step.strategy) == ("mail-first", "email", "email-first@1")
        else:
            assert (step.step, step.channel, step.strategy) == ("reminder", "email", "builtin@1")
    assert arms["email-first"] > 10 and arms["champion"] > 10
    # standard customers take no share of this challenger: all on the champion, outside the experiment
    other = unique("ACC")
    await seed(scheduler, [segmented(tenant_a, other, segment="standard")])
    [step] = await steps_of(scheduler, tenant_a, other)
    assert (step.arm, step.strategy, step.experiment) == ("champion", "builtin@1", None)


async def test_promoting_a_challenger_makes_its_strategy_the_champion_and_is_audited(
        scheduler: ServiceApi, tenant_a: Tenant) -> None:
    await publish(scheduler, tenant_a, "email-first", email_first())
    await assign(scheduler, tenant_a, {
        "champion": {"strategy": "builtin", "version": 1}, "experiment": "exp-2",
        "challengers": [{"arm": "mail", "strategy": "email-first", "version": 1, "share_bp": {"prime": 1000}}]})
    assert_problem(await scheduler.client.post("/v1/strategy-assignment/promote", headers=tenant_a.headers,
                                               json={"arm": "nope", "reason": "x"}), 409)
    promoted = await scheduler.client.post("/v1/strategy-assignment/promote", headers=tenant_a.headers,
                                           json={"arm": "mail", "reason": "cure rate +4 pts, significant"})
    assert promoted.status_code == 201, promoted.text
    assert promoted.json()["document"] == {"champion": {"strategy": "email-first", "version": 1}}
    now = (await scheduler.client.get("/v1/strategy-assignment", headers=tenant_a.headers)).json()
    assert now["version"] == 2
    account = unique("ACC")
    await seed(scheduler, [segmented(tenant_a, account, segment="prime")])
    [step] = await steps_of(scheduler, tenant_a, account)
    assert (step.arm, step.strategy, step.step) == ("champion", "email-first@1", "mail-first")
    audit = await scheduler.all(select(AuditEntry).where(AuditEntry.tenant == tenant_a.id)
                                .order_by(AuditEntry.id))  # type: ignore[arg-type]
    assert [a.action for a in audit] == ["strategy.publish", "assignment.publish", "assignment.promote"]
    assert len(await scheduler.all(select(StrategyAssignment).where(StrategyAssignment.tenant == tenant_a.id))) == 2


async def outcome(api: ServiceApi, step: TreatmentStep, kind: str, at: datetime) -> None:
    async with api.runtime.units() as uow:
        await service.record_outcomes(uow, outcomes=[ContactOutcomeV1(
            tenant=step.tenant, contact_id=step.contact_id, account_id=step.account_id, customer_id=step.customer_id,
            channel=step.channel, outcome=kind, occurred_at=at)])  # type: ignore[arg-type]
        await uow.commit()


async def test_a_failed_sms_is_retried_then_falls_back_to_email_and_a_late_delivery_cancels_what_is_pending(
        scheduler: ServiceApi, tenant_a: Tenant) -> None:
    await publish(scheduler, tenant_a, "retry", sms_retry())
    await assign(scheduler, tenant_a, {"champion": {"strategy": "retry", "version": 1}})
    account = unique("ACC")
    await seed(scheduler, [segmented(tenant_a, account)])
    [first] = await steps_of(scheduler, tenant_a, account)
    assert (first.step, first.channel, first.status) == ("nudge", "sms", "requested")
    failed_at = datetime.now(UTC) - timedelta(minutes=10)
    await outcome(scheduler, first, "failed", failed_at)
    await outcome(scheduler, first, "failed", failed_at)  # a repeated outcome makes no second retry
    steps = await steps_of(scheduler, tenant_a, account)
    # the retry fell due five minutes after the failure, which has passed: requested at once
    assert [(s.step, s.channel, s.status) for s in steps] == [("nudge", "sms", "failed"),
                                                               ("nudge/retry-1", "sms", "requested")]
    assert steps[1].due_at == failed_at + timedelta(minutes=5)
    assert [r.event.subject for r in await scheduler.outbox(tenant_a)][-1] == steps[1].contact_id
    await outcome(scheduler, steps[1], "failed", failed_at + timedelta(minutes=6))
    steps = await steps_of(scheduler, tenant_a, account)
    assert (steps[2].step, steps[2].channel, steps[2].template_id, steps[2].status) == (
        "nudge/fallback-1", "email", "reminder.email", "pending")
    assert steps[2].due_at == failed_at + timedelta(minutes=16)
    # the retry's receipt is corrected: it was delivered after all, so the e-mail is not needed
    await outcome(scheduler, steps[1], "delivered", failed_at + timedelta(minutes=7))
    steps = await steps_of(scheduler, tenant_a, account)
    assert [(s.step, s.status) for s in steps] == [("nudge", "failed"), ("nudge/retry-1", "done"),
                                                   ("nudge/fallback-1", "cancelled")]


async def test_the_timeline_dry_run_shows_made_and_planned_steps_for_the_tenant_only(
        scheduler: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    await publish(scheduler, tenant_a, "email-first", email_first())
    account = unique("ACC")
    await seed(scheduler, [segmented(tenant_a, account, segment="prime", dpd=5)])
    got = await scheduler.client.get(f"/v1/accounts/{account}/timeline?days=40", headers=tenant_a.headers)
    assert got.status_code == 200, got.text
    body = got.json()
    assert (body["strategy"], body["arm"], body["days_past_due"]) == ("builtin@1", "champion", 5)
    assert [(e["state"], e["step"], e["channel"], e["days_past_due"]) for e in body["steps"]] == [
        ("made", "reminder", "email", 5), ("planned", "call", "call", 16)]
    assert body["steps"][0]["status"] == "requested"
    other = (await scheduler.client.get(f"/v1/accounts/{account}/timeline?strategy=email-first@1&days=40",
                                        headers=tenant_a.headers)).json()
    assert [(e["state"], e["step"]) for e in other["steps"]] == [("made", "reminder"), ("planned", "mail-first"),
                                                                 ("planned", "call")]
    assert other["steps"][1]["due_at"] is not None  # timed at 10:00 local on DPD 1
    assert await steps_of(scheduler, tenant_a, account) != [] and len(await steps_of(scheduler, tenant_a, account)) == 1
    assert_problem(await scheduler.client.get(f"/v1/accounts/{account}/timeline?strategy=nope@1",
                                              headers=tenant_a.headers), 404)
    assert_problem(await scheduler.client.get(f"/v1/accounts/{account}/timeline", headers=tenant_b.headers), 404)
    assert_problem(await scheduler.client.get(f"/v1/accounts/{account}/timeline?strategy=email-first@1",
                                              headers=tenant_b.headers), 404)


def escalating() -> dict[str, Any]:
    """Standard customers from DPD 31: a call; with a broken plan in this cycle, a field visit instead."""
    doc = copy.deepcopy(BUILTIN)
    doc["segments"]["standard"]["31-60"] = [
        {"id": "call-31", "day": 31, "channel": "call", "template": "call.script"},
        {"id": "after-broken-plan", "day": 31, "channel": "field", "template": "field.visit",
         "when": {"broken_promises_min": 1}}]
    return doc


async def plan_event(api: ServiceApi, tenant: Tenant, account: str, kind: str, at: datetime) -> None:
    async with api.runtime.units() as uow:
        instalments = [{"seq": 1, "due_date": date.today() + timedelta(days=10), "amount_minor": 12_300}]
        await service.apply_plan_events(uow, plan_events=[PlanEventV1(
            tenant=tenant.id, plan_id=f"P-{account}", account_id=account, customer_id=f"C-{account}", kind=kind,
            occurred_at=at, currency="CNY", total_minor=12_300, instalments=instalments)])  # type: ignore[arg-type]
        await uow.commit()


@pytest.mark.parametrize("order", [("agreed", "broken"), ("broken", "agreed")])
async def test_a_broken_plan_escalates_to_the_step_its_strategy_names_whatever_the_order(
        scheduler: ServiceApi, tenant_a: Tenant, order: tuple[str, str]) -> None:
    await publish(scheduler, tenant_a, "escalate", escalating())
    await assign(scheduler, tenant_a, {"champion": {"strategy": "escalate", "version": 1}})
    account = unique("ACC")
    await seed(scheduler, [segmented(tenant_a, account, dpd=35)])
    [call] = await steps_of(scheduler, tenant_a, account)
    assert (call.step, call.channel) == ("call-31", "call")
    now = datetime.now(UTC)
    times = {"agreed": now - timedelta(hours=2), "broken": now - timedelta(hours=1)}
    for kind in order:
        await plan_event(scheduler, tenant_a, account, kind, times[kind])
    steps = await steps_of(scheduler, tenant_a, account)
    assert [(s.step, s.channel) for s in steps] == [("call-31", "call"), ("after-broken-plan", "field")]
    assert steps[1].status == "requested" and "after-broken-plan" in steps[1].last_reason
    treatment = (await scheduler.client.get(f"/v1/treatments/{account}", headers=tenant_a.headers)).json()
    assert treatment["status"] == "active"


async def test_the_experiment_report_shows_each_arm_with_intervals_and_says_whether_it_differs(
        scheduler: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    await publish(scheduler, tenant_a, "email-first", email_first())
    experiment = unique("exp").lower()
    await assign(scheduler, tenant_a, {
        "champion": {"strategy": "builtin", "version": 1}, "experiment": experiment,
        "challengers": [{"arm": "mail", "strategy": "email-first", "version": 1, "share_bp": {"prime": 5000}}]})
    accounts = [unique("ACC") for _ in range(40)]
    await seed(scheduler, [segmented(tenant_a, a, segment="prime") for a in accounts])
    steps = {s.account_id: s for s in await steps_of(scheduler, tenant_a)}
    # time passes: the steps were planned 40 days ago; each contact was delivered, the challenger's customers paid
    # in full within five days, one champion customer half within ten, and one challenger customer complained
    started = datetime.now(UTC) - timedelta(days=40)
    async with scheduler.runtime.units() as uow:
        await uow.session.execute(update(TreatmentStep).where(TreatmentStep.tenant == tenant_a.id)
                                  .values(created_at=started))  # type: ignore[arg-type]
        await uow.commit()
    for step in steps.values():
        await outcome(scheduler, step, "delivered", started + timedelta(minutes=1))
    mail = [a for a, s in steps.items() if s.arm == "mail"]
    champion = [a for a, s in steps.items() if s.arm == "champion"]
    assert mail and champion
    paying = [(a, 12_300, 5) for a in mail] + [(champion[0], 6_150, 10)]
    async with scheduler.runtime.units() as uow:
        await service.apply_payments(uow, payments=[PaymentReceivedV1(
            tenant=tenant_a.id, account_id=a, customer_id=f"C-{a}", payment_id=f"PAY-{a}", amount_minor=amount,
            currency="CNY", paid_at=started + timedelta(days=days)) for a, amount, days in paying])
        await experiments.record_holds(uow, holds=[HoldChangedV1(
            tenant=tenant_a.id, hold_id=unique("H"), customer_id=f"C-{mail[0]}", kind="complaint", action="placed",
            reason="too many messages", starts_at=started + timedelta(days=1),
            occurred_at=started + timedelta(days=1))])
        await uow.commit()

    listed = (await scheduler.client.get("/v1/experiments", headers=tenant_a.headers)).json()
    assert [(e["experiment"], e["arms"]) for e in listed] == [(experiment, ["champion", "mail"])]
    got = await scheduler.client.get(f"/v1/experiments/{experiment}/report", headers=tenant_a.headers)
    assert got.status_code == 200, got.text
    body = got.json()
    by_arm = {a["arm"]: a for a in body["arms"]}
    assert [a["arm"] for a in body["arms"]] == ["champion", "mail"]
    assert (by_arm["mail"]["accounts"], by_arm["champion"]["accounts"]) == (len(mail), len(champion))
    assert by_arm["mail"]["contacts_per_account"] == 1 and by_arm["mail"]["cost_minor"] == len(mail) * 1  # e-mails
    cure30 = by_arm["mail"]["cure_rate"]["30"]
    assert (cure30["value"], cure30["numerator"], cure30["denominator"]) == (1.0, len(mail), len(mail))
    assert by_arm["champion"]["cure_rate"]["30"]["numerator"] == 0
    assert by_arm["champion"]["recovery_rate"]["30"]["numerator"] == 6_150
    assert by_arm["champion"]["cure_rate"]["60"]["value"] is None  # 40 days: not matured at 60
    assert by_arm["mail"]["complaint_rate"]["numerator"] == 1
    [cure_at_30] = [c for c in by_arm["mail"]["compared"] if c["metric"] == "cure rate at 30 days"]
    assert cure_at_30["significant"] and "significant at 95%" in cure_at_30["statement"]
    # another tenant sees no such experiment
    assert_problem(await scheduler.client.get(f"/v1/experiments/{experiment}/report", headers=tenant_b.headers), 404)
    assert (await scheduler.client.get("/v1/experiments", headers=tenant_b.headers)).json() == []


async def test_an_instalment_announced_early_gets_the_pre_due_reminder_planned_for_its_day(
        scheduler: ServiceApi, tenant_a: Tenant) -> None:
    """The early warning: a high-risk customer announced five days before the due date gets the built-in pre-due
    reminder three days before it, a durable timer until then; paying first stops the treatment and cancels it."""
    account = unique("ACC")
    payload, event = segmented(tenant_a, account, segment="high_risk", dpd=-5)
    await seed(scheduler, [(payload.model_copy(update={"dpd_bucket": "0"}), event)])
    [step] = await steps_of(scheduler, tenant_a, account)
    local_day = payload.due_date - timedelta(days=3)
    assert (step.step, step.channel, step.status) == ("pre-due", "sms", "pending")
    assert step.due_at == datetime.combine(local_day, datetime.min.time(), tzinfo=ZoneInfo("Asia/Shanghai"))
    assert await scheduler.outbox(tenant_a) == []  # nothing requested yet
    async with scheduler.runtime.units() as uow:
        await service.apply_payments(uow, payments=[PaymentReceivedV1(
            tenant=tenant_a.id, account_id=account, customer_id=f"C-{account}", payment_id=unique("PAY"),
            amount_minor=12_300, currency="CNY", paid_at=datetime.now(UTC) + timedelta(seconds=1))])
        await uow.commit()
    [step] = await steps_of(scheduler, tenant_a, account)
    assert step.status == "cancelled"
    treatment = (await scheduler.client.get(f"/v1/treatments/{account}", headers=tenant_a.headers)).json()
    assert (treatment["status"], treatment["days_past_due"]) == ("stopped", -5)

"""Negotiation over REST on the real database (services/plans/api/negotiation.py): the plan policy (roles,
refusals that store nothing, versions, audit), quotes, agreements from a quote and the approval chain: the maker
cannot approve, a supervisor approves, a co-lender's approval when the policy says so (pending until then; a tenant
that is not a co-lender gets 404), a rejection ends it, an expired quote is refused; another tenant's quote or plan
is a 404; bad input a 422, never a 500."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from services.plans.db.models import AuditEntry, Plan
from services.plans.db.negotiation import PlanPolicyRow, PlanQuote
from shared.access import store
from shared.contracts import topics
from shared.contracts.events import PlanEventV1
from shared.db import asyncpg_url
from tests.api.support import ServiceApi, Tenant, assert_problem, unique
from tests.plans.support import consume, overdue_notice

pytestmark = pytest.mark.integration
POLICY = "/v1/plan-policy"


async def issue(infra: Any, tenant: Tenant, roles: set[str], principal: str) -> dict[str, str]:
    """An issued API key of the tenant with these roles, as request headers."""
    engine = create_async_engine(asyncpg_url(infra.database_url), poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            key, _ = await store.issue(conn, tenant=tenant.id, principal=principal, roles=frozenset(roles),
                                       created_by="test", now=datetime.now(UTC), expires_at=None)
    finally:
        await engine.dispose()
    return {"Authorization": f"Bearer {key.text}"}


async def known(api: ServiceApi, tenant: Tenant, *, co_lenders: tuple[tuple[str, int], ...] = (),
                overdue_minor: int = 250_000) -> str:
    account = unique("ACC")
    await consume(api.runtime.sessions, overdue_notice(tenant.id, account, overdue_minor=overdue_minor,
                                                       outstanding_minor=1_000_000, co_lenders=co_lenders))
    return account


async def quote(api: ServiceApi, account: str, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await api.client.post(f"/v1/accounts/{account}/quotes", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def agree(api: ServiceApi, quote_id: str, offer_id: str, headers: dict[str, str]) -> Any:
    return await api.client.post(f"/v1/quotes/{quote_id}/agreements", json={"offer_id": offer_id,
                                                                            "reason": "lost her job"},
                                 headers=headers)


async def approve(api: ServiceApi, plan_id: str, headers: dict[str, str], decision: str = "approve",
                  servicer: str | None = None) -> Any:
    path = (f"/v1/co-lending/{servicer}/plans/{plan_id}/approvals" if servicer
            else f"/v1/plans/{plan_id}/approvals")
    return await api.client.post(path, json={"decision": decision, "reason": "payslips seen"}, headers=headers)


async def plan_events(api: ServiceApi, tenant: Tenant) -> list[PlanEventV1]:
    return [PlanEventV1.model_validate(o.event.data) for o in await api.outbox(tenant)
            if o.topic == topics.PLAN_EVENT.name]


async def test_the_plan_policy_is_published_by_a_strategist_versioned_audited_and_refused_with_every_reason(
        plans: ServiceApi, infra: Any, tenant_a: Tenant, tenant_b: Tenant) -> None:
    agent = await issue(infra, tenant_a, {"agent", "supervisor"}, "agent-7")
    strategist = await issue(infra, tenant_a, {"strategist"}, "strategist-li")
    document = {"rules": [{"name": "all", "offers": {"deferral": {"max_days": 20}}}]}
    assert (await plans.client.get(POLICY, headers=tenant_a.headers)).json()["version"] == 0
    assert_problem(await plans.client.put(POLICY, json={"document": document, "reason": "r"}, headers=agent), 403)
    refused = assert_problem(await plans.client.put(POLICY, headers=strategist, json={
        "document": {"rules": [{"name": "x", "offers": {"waiver": {"max_percent": 150}}, "extra": 1}]},
        "reason": "r"}), 422)
    assert len(refused["errors"]) == 2 and refused["title"] == "Plan policy refused"
    assert_problem(await plans.client.put(POLICY, json={"document": document}, headers=strategist), 422)
    assert await plans.all(select(PlanPolicyRow).where(PlanPolicyRow.tenant == tenant_a.id)) == []  # type: ignore[arg-type]
    published = await plans.client.put(POLICY, json={"document": document, "reason": "board 7"}, headers=strategist)
    assert published.status_code == 201, published.text
    assert (published.json()["version"], published.json()["created_by"]) == (1, "strategist-li")
    assert (await plans.client.get(POLICY, headers=agent)).json()["document"] == document
    history = (await plans.client.get(f"{POLICY}/versions", headers=agent)).json()
    assert [(v["version"], v["reason"]) for v in history] == [(1, "board 7")]
    assert (await plans.client.get(POLICY, headers=tenant_b.headers)).json()["version"] == 0
    audit = await plans.all(select(AuditEntry).where(AuditEntry.tenant == tenant_a.id))  # type: ignore[arg-type]
    assert [(a.principal, a.action, a.subject, a.reason) for a in audit] == [
        ("strategist-li", "plan_policy.publish", "plan-policy:v1", "board 7")]
    documented = plans.app.openapi()["paths"]
    assert documented[POLICY]["put"]["x-required-roles"] == ["compliance", "strategist"]


async def test_a_quote_lists_the_offers_with_exact_decimal_schedules(plans: ServiceApi, tenant_a: Tenant,
                                                                     tenant_b: Tenant) -> None:
    account = await known(plans, tenant_a)
    body = await quote(plans, account, tenant_a.headers, income="8000.00", expenses="5000.00")
    offers = {o["offer_id"]: o for o in body["offers"]}
    assert (body["currency"], body["overdue"], body["outstanding"], body["policy_version"]) == (
        "CNY", "2500.00", "10000.00", 0)
    three = offers["instalments-3"]
    assert [(s["seq"], s["amount"], s["amount_minor"]) for s in three["schedule"]] == [
        (1, "833.34", 83_334), (2, "833.33", 83_333), (3, "833.33", 83_333)]
    assert (three["total"], three["written_off"], three["affordable"], three["approvals_required"]) == (
        "2500.00", "0.00", True, [])
    assert (offers["settlement"]["total"], offers["settlement"]["written_off"]) == ("8000.00", "2000.00")
    got = await plans.client.get(f"/v1/quotes/{body['quote_id']}", headers=tenant_a.headers)
    assert got.status_code == 200 and got.json() == body
    assert_problem(await plans.client.get(f"/v1/quotes/{body['quote_id']}", headers=tenant_b.headers), 404)
    assert_problem(await plans.client.post(f"/v1/accounts/{account}/quotes", json={}, headers=tenant_b.headers), 404)
    unknown = assert_problem(await plans.client.post("/v1/accounts/NOPE/quotes", json={},
                                                     headers=tenant_a.headers), 404)
    assert unknown["title"] == "Account not known to plans"


@pytest.mark.parametrize("body", [
    {"income": 8000}, {"income": "-1.00"}, {"income": "1e5"}, {"expenses": "12345678901234567.00"},
    {"income": "NaN"}, {"income": ["1"]}, {"income": "1.00\u0000"}, {"income": "10.001"}, "not an object",
])
async def test_hostile_quote_bodies_are_422_and_store_nothing(plans: ServiceApi, tenant_a: Tenant,
                                                              body: Any) -> None:
    account = await known(plans, tenant_a)
    assert_problem(await plans.client.post(f"/v1/accounts/{account}/quotes", json=body,
                                           headers=tenant_a.headers), 422)
    assert await plans.all(select(PlanQuote).where(PlanQuote.tenant == tenant_a.id)) == []  # type: ignore[arg-type]


async def test_the_approval_chain_maker_supervisor_and_expired_quotes(plans: ServiceApi, infra: Any,
                                                                      tenant_a: Tenant, tenant_b: Tenant) -> None:
    maker = await issue(infra, tenant_a, {"agent"}, "lee")
    maker_as_supervisor = await issue(infra, tenant_a, {"supervisor"}, "lee")  # the same principal, another key
    lead = await issue(infra, tenant_a, {"supervisor"}, "lead-wang")
    account = await known(plans, tenant_a)
    q = await quote(plans, account, maker)
    made = await agree(plans, q["quote_id"], "instalments-12", maker)
    assert made.status_code == 201, made.text
    plan = made.json()
    assert (plan["status"], plan["made_by"], plan["kind"], plan["approvals"]) == (
        "pending_approval", "lee", "instalments", [
            {"step": "supervisor", "status": "pending", "decided_by": None, "decided_tenant": None, "reason": None,
             "decided_at": None}])
    assert await plan_events(plans, tenant_a) == []  # nothing announced while pending
    assert_problem(await agree(plans, q["quote_id"], "instalments-2", maker), 409)  # a quote is used once
    assert_problem(await approve(plans, plan["plan_id"], maker), 403)  # an agent is no approver
    refused = assert_problem(await approve(plans, plan["plan_id"], maker_as_supervisor), 403)
    assert refused["title"] == "The maker cannot approve"
    assert_problem(await approve(plans, plan["plan_id"], tenant_b.headers), 404)  # another tenant's plan
    assert_problem(await plans.client.get(f"/v1/plans/{plan['plan_id']}/approvals", headers=tenant_b.headers), 404)
    approved = await approve(plans, plan["plan_id"], lead)
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["approvals"][0]["decided_by"]) == ("agreed", "lead-wang")
    assert [(e.kind, e.plan_id) for e in await plan_events(plans, tenant_a)] == [("agreed", plan["plan_id"])]
    assert_problem(await approve(plans, plan["plan_id"], lead), 409)  # nothing pending any more
    audit = await plans.all(select(AuditEntry).where(AuditEntry.tenant == tenant_a.id).order_by(AuditEntry.id))  # type: ignore[arg-type]
    assert [(a.principal, a.action, a.reason) for a in audit] == [
        ("lee", "plan.propose", "lost her job"), ("lead-wang", "plan.approve", "payslips seen")]

    # an expired quote is refused and stores nothing
    other = await known(plans, tenant_a)
    q2 = await quote(plans, other, maker)
    async with plans.runtime.units() as uow:
        await uow.session.execute(update(PlanQuote).where(PlanQuote.quote_id == q2["quote_id"])  # type: ignore[arg-type]
                                  .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        await uow.commit()
    expired = assert_problem(await agree(plans, q2["quote_id"], "instalments-2", maker), 409)
    assert expired["title"] == "Quote expired"
    assert await plans.all(select(Plan).where(Plan.account_id == other)) == []  # type: ignore[arg-type]
    assert_problem(await agree(plans, q2["quote_id"], "instalments-2", tenant_b.headers), 404)


async def test_a_co_lender_approves_over_rest_and_a_non_co_lender_gets_404(
        plans: ServiceApi, infra: Any, tenant_a: Tenant, tenant_b: Tenant, tenant_c: Tenant) -> None:
    maker = await issue(infra, tenant_a, {"agent"}, "agent-7")
    lead = await issue(infra, tenant_a, {"supervisor"}, "lead-wang")
    bank = await issue(infra, tenant_b, {"partner"}, "risk-desk")
    bank_agent = await issue(infra, tenant_b, {"agent"}, "someone")
    account = await known(plans, tenant_a, co_lenders=((tenant_b.id, 3_000),))
    q = await quote(plans, account, maker)
    waiver = next(o for o in q["offers"] if o["offer_id"] == "waiver-1")
    assert waiver["approvals_required"] == ["supervisor", f"co_lender:{tenant_b.id}"]
    plan = (await agree(plans, q["quote_id"], "waiver-1", maker)).json()
    after_lead = await approve(plans, plan["plan_id"], lead)
    assert after_lead.json()["status"] == "pending_approval"  # the co-lender still has to approve
    assert await plan_events(plans, tenant_a) == []
    co_path = f"/v1/co-lending/{tenant_a.id}/plans/{plan['plan_id']}/approvals"
    assert_problem(await approve(plans, plan["plan_id"], tenant_c.headers, servicer=tenant_a.id), 404)
    assert_problem(await plans.client.get(co_path, headers=tenant_c.headers), 404)
    assert_problem(await approve(plans, plan["plan_id"], tenant_b.headers), 404)  # the servicer route: not B's plan
    assert_problem(await approve(plans, plan["plan_id"], bank_agent, servicer=tenant_a.id), 403)  # role
    seen = (await plans.client.get(co_path, headers=bank)).json()
    assert [(a["step"], a["status"]) for a in seen["approvals"]] == [
        (f"co_lender:{tenant_b.id}", "pending"), ("supervisor", "approved")]
    done = await approve(plans, plan["plan_id"], bank, servicer=tenant_a.id)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "agreed"
    assert [e.kind for e in await plan_events(plans, tenant_a)] == ["agreed"]
    bank_audit = await plans.all(select(AuditEntry).where(AuditEntry.tenant == tenant_b.id))  # type: ignore[arg-type]
    assert [(a.principal, a.action) for a in bank_audit] == [("risk-desk", "plan.approve")]


async def test_a_rejection_ends_it_and_bad_decisions_are_422(plans: ServiceApi, infra: Any,
                                                             tenant_a: Tenant) -> None:
    maker = await issue(infra, tenant_a, {"agent"}, "agent-7")
    lead = await issue(infra, tenant_a, {"supervisor"}, "lead-wang")
    account = await known(plans, tenant_a)
    q = await quote(plans, account, maker)
    plan = (await agree(plans, q["quote_id"], "deferral-30", maker)).json()
    path = f"/v1/plans/{plan['plan_id']}/approvals"
    bad: Any
    for bad in ({"decision": "maybe", "reason": "r"}, {"decision": "approve"}, {"decision": "approve", "reason": ""},
                {"decision": "approve", "reason": "\x00"}, []):
        assert_problem(await plans.client.post(path, json=bad, headers=lead), 422)
    assert_problem(await plans.client.post(f"/v1/quotes/{q['quote_id']}/agreements", json={"offer_id": "x\x01",
                                                                                            "reason": "r"},
                                           headers=maker), 422)
    rejected = await approve(plans, plan["plan_id"], lead, decision="reject")
    assert (rejected.status_code, rejected.json()["status"]) == (200, "rejected")
    assert await plan_events(plans, tenant_a) == []
    assert_problem(await approve(plans, plan["plan_id"], lead), 409)
    # an agent-level offer by the static key (every role) is agreed at once
    q2 = await quote(plans, account, tenant_a.headers)
    agreed = await agree(plans, q2["quote_id"], "instalments-2", tenant_a.headers)
    assert (agreed.status_code, agreed.json()["status"]) == (201, "agreed")
    unknown_offer = assert_problem(await agree(plans, (await quote(plans, account, maker))["quote_id"], "nope",
                                               maker), 422)
    assert unknown_offer["title"] == "No such offer"

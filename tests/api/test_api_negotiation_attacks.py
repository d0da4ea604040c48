"""Attacks on negotiation over REST (services/plans/api/negotiation.py): hostile policy documents and bodies
answer a problem (never a 500) and store nothing; quotes in currencies of exponent 0 and 3 are exact; another
approving the second of two pending plans of an account while the first commits is a 409 (never a 500); a quote
made out of date by a payment is a 409."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from services.plans import negotiation
from services.plans.db.models import Plan
from services.plans.db.negotiation import PlanPolicyRow, PlanQuote
from shared.access import store
from shared.db import asyncpg_url
from tests.api.support import ServiceApi, Tenant, assert_problem, unique
from tests.plans.support import consume, overdue_notice, payment_received

pytestmark = pytest.mark.integration
POLICY = "/v1/plan-policy"
HEADERS = {"content-type": "application/json"}


async def known(api: ServiceApi, tenant: Tenant, *, overdue_minor: int = 250_000, currency: str = "CNY",
                outstanding_minor: int = 1_000_000) -> str:
    account = unique("ACC")
    await consume(api.runtime.sessions, overdue_notice(tenant.id, account, overdue_minor=overdue_minor,
                                                       currency=currency, outstanding_minor=outstanding_minor))
    return account


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("raw", [
    # nesting deeper than any parser's recursion limit
    '{"document": {"rules": ' + nested(100_000) + '}, "reason": "r"}',
    # a lone surrogate (JSON allows the escape; UTF-8 cannot encode it)
    '{"document": {"rules": [{"name": "a", "offers": {"deferral": {"max_days": 5}}}]}, "reason": "\\ud800"}',
    '{"document": {"rules": [{"name": "\\ud800", "offers": {"deferral": {"max_days": 5}}}]}, "reason": "r"}',
    '{"document": {"rules": [{"name": "a", "when": {"product_in": ["\\udfff"]}, '
    '"offers": {"deferral": {"max_days": 5}}}]}, "reason": "r"}',
    # NUL where PostgreSQL cannot store it
    '{"document": {"rules": [{"name": "a\\u0000", "offers": {"deferral": {"max_days": 5}}}]}, "reason": "r"}',
    '{"document": {"rules": [{"name": "a", "offers": {"deferral": {"max_days": 5}}}], "\\u0000": 1}, "reason": "r"}',
    # numbers JSON does not have, and numbers of the wrong kind
    '{"document": {"rules": [{"name": "a", "offers": {"waiver": {"max_percent": NaN}}}]}, "reason": "r"}',
    '{"document": {"rules": [{"name": "a", "offers": {"waiver": {"max_percent": Infinity}}}]}, "reason": "r"}',
    '{"document": {"rules": [{"name": "a", "offers": {"deferral": {"max_days": 5.0}}}]}, "reason": "r"}',
    '{"document": {"rules": [{"name": "a", "offers": {"deferral": {"max_days": true}}}]}, "reason": "r"}',
    '{"document": {"rules": [{"name": "a", "offers": {"deferral": {"max_days": -1}}}]}, "reason": "r"}',
    '{"document": {"rules": [{"name": "a", "offers": {"waiver": {"max_percent": 1e400}}}]}, "reason": "r"}',
    '{"document": {"rules": [{"name": "a", "offers": {"waiver": {"max_percent": "1e-400"}}}]}, "reason": "r"}',
    '{"document": {"rules": [{"name": "a", "offers": {"instalments": {"max_months": '
    + "9" * 5000 + '}}}]}, "reason": "r"}',
    # a document over 64 KB
    '{"document": {"rules": [{"name": "a", "when": {"product_in": ['
    + ",".join(f'"{i:063d}"' for i in range(1_100)) + ']}, "offers": {"deferral": {"max_days": 5}}}]}, '
    '"reason": "r"}',
])
async def test_hostile_policy_documents_are_refused_never_a_500_and_store_nothing(
        plans: ServiceApi, tenant_a: Tenant, raw: str) -> None:
    response = await plans.client.put(POLICY, content=raw.encode("utf-8", "surrogatepass"),
                                      headers={**tenant_a.headers, **HEADERS})
    assert response.status_code in (400, 413, 422), (response.status_code, response.text[:300])
    assert response.headers["content-type"] == "application/problem+json"
    assert await plans.all(select(PlanPolicyRow).where(PlanPolicyRow.tenant == tenant_a.id)) == []  # type: ignore[arg-type]


@pytest.mark.parametrize("raw", [
    '{"income": "\\ud800"}',
    '{"income": true}', '{"income": 1e9}', '{"income": "1e9"}', '{"income": "-1"}', '{"expenses": "NaN"}',
    '{"income": "Infinity"}', '{"income": "8000.00", "expenses": "0x10"}', '{"income": "\\uff18000"}',
    '{"income": NaN}',
])
async def test_hostile_quote_bodies_are_refused_never_a_500(plans: ServiceApi, tenant_a: Tenant, raw: str) -> None:
    account = await known(plans, tenant_a)
    response = await plans.client.post(f"/v1/accounts/{account}/quotes", content=raw.encode("utf-8", "surrogatepass"),
                                       headers={**tenant_a.headers, **HEADERS})
    assert_problem(response, 422)
    assert await plans.all(select(PlanQuote).where(PlanQuote.tenant == tenant_a.id)) == []  # type: ignore[arg-type]


@pytest.mark.parametrize("raw", [
    '{"offer_id": "\\ud800", "reason": "r"}',
    '{"offer_id": "instalments-2", "reason": "\\ud800"}',
    '{"offer_id": "instalments-2", "reason": "\\udfff ok"}',
])
async def test_hostile_agreement_bodies_are_refused_never_a_500_and_store_nothing(
        plans: ServiceApi, tenant_a: Tenant, raw: str) -> None:
    account = await known(plans, tenant_a)
    quoted = await plans.client.post(f"/v1/accounts/{account}/quotes", json={}, headers=tenant_a.headers)
    response = await plans.client.post(f"/v1/quotes/{quoted.json()['quote_id']}/agreements",
                                       content=raw.encode("utf-8", "surrogatepass"),
                                       headers={**tenant_a.headers, **HEADERS})
    assert_problem(response, 422)
    assert await plans.all(select(Plan).where(Plan.tenant == tenant_a.id)) == []  # type: ignore[arg-type]


@pytest.mark.parametrize(("currency", "overdue", "expected"), [
    ("JPY", 250_001, ["83334", "83334", "83333"]),
    ("KWD", 2_500_001, ["833.334", "833.334", "833.333"]),
])
async def test_quotes_in_currencies_of_exponent_0_and_3_are_exact(plans: ServiceApi, tenant_a: Tenant,
                                                                  currency: str, overdue: int,
                                                                  expected: list[str]) -> None:
    account = await known(plans, tenant_a, overdue_minor=overdue, currency=currency, outstanding_minor=overdue * 4)
    # income finer than the currency is refused; whole amounts are fine
    fine = "8000.5" if currency == "JPY" else "8000.0001"
    assert_problem(await plans.client.post(f"/v1/accounts/{account}/quotes", json={"income": fine, "expenses": "0"},
                                           headers=tenant_a.headers), 422)
    response = await plans.client.post(f"/v1/accounts/{account}/quotes", json={"income": "100000", "expenses": "0"},
                                       headers=tenant_a.headers)
    assert response.status_code == 201, response.text
    offers = {o["offer_id"]: o for o in response.json()["offers"]}
    three = offers["instalments-3"]
    assert [s["amount"] for s in three["schedule"]] == expected
    assert sum(s["amount_minor"] for s in three["schedule"]) == overdue
    for offer in offers.values():
        assert sum(s["amount_minor"] for s in offer["schedule"]) == offer["total_minor"]
        assert offer["total_minor"] + offer["written_off_minor"] in (overdue, overdue * 4)


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


async def test_approving_the_second_of_two_pending_plans_while_the_first_commits_is_a_409_not_a_500(
        plans: ServiceApi, infra: Any, tenant_a: Tenant) -> None:
    maker = await issue(infra, tenant_a, {"agent"}, "agent-7")
    lead = await issue(infra, tenant_a, {"supervisor"}, "lead-li")
    account = await known(plans, tenant_a)
    made = []
    for offer in ("instalments-10", "instalments-11"):
        quoted = await plans.client.post(f"/v1/accounts/{account}/quotes", json={}, headers=maker)
        agreed = await plans.client.post(f"/v1/quotes/{quoted.json()['quote_id']}/agreements",
                                         json={"offer_id": offer, "reason": "lost her job"}, headers=maker)
        assert agreed.json()["status"] == "pending_approval", agreed.text
        made.append(agreed.json()["plan_id"])
    async with plans.runtime.units() as uow:  # another replica approves the first, not committed yet
        await negotiation.decide(uow, servicer=tenant_a.id, plan_id=made[0], approver="lead-wang",
                                 approver_tenant=tenant_a.id, approver_roles=frozenset({"supervisor"}), approve=True,
                                 reason="ok", now=datetime.now(UTC))
        racing = asyncio.create_task(plans.client.post(f"/v1/plans/{made[1]}/approvals", headers=lead,
                                                       json={"decision": "approve", "reason": "payslips seen"}))
        for _ in range(250):
            async with plans.runtime.sessions() as session:
                if (await session.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted"))).scalar():
                    break
            await asyncio.sleep(0.02)
        await uow.commit()
    refused = assert_problem(await racing, 409)
    assert refused["title"] == "Plan already agreed"
    statuses = {p.plan_id: p.status for p in await plans.all(select(Plan).where(Plan.account_id == account))}  # type: ignore[arg-type]
    assert statuses == {made[0]: "agreed", made[1]: "pending_approval"}


async def test_a_quote_out_of_date_is_a_409_and_stores_nothing(plans: ServiceApi, tenant_a: Tenant) -> None:
    account = await known(plans, tenant_a)
    quoted = (await plans.client.post(f"/v1/accounts/{account}/quotes", json={}, headers=tenant_a.headers)).json()
    await consume(plans.runtime.sessions, payment_received(tenant_a.id, account, unique("PAY"), 50_000))
    stale = assert_problem(await plans.client.post(f"/v1/quotes/{quoted['quote_id']}/agreements",
                                                   headers=tenant_a.headers,
                                                   json={"offer_id": "settlement", "reason": "r"}), 409)
    assert stale["title"] == "Quote out of date"
    assert await plans.all(select(Plan).where(Plan.account_id == account)) == []  # type: ignore[arg-type]

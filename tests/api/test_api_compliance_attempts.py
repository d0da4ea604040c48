"""Agents' and dialers' contact attempts over REST (services/compliance/api/attempts.py), through the ASGI app on
the real database: what they report lands in the contact ledger the rules count (CN-ATTEMPTS per number, CN-CONNECTS
per debtor) so the next POST /v1/checks sees it; idempotent per attempt_id, a later outcome wins; per tenant; the
number kept only as its key; bad input a 422 that stores nothing; the roles agent, supervisor, compliance."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from services.compliance.db.models import ContactLedgerEntry
from services.compliance.domain.rules.common import next_local_midnight
from services.compliance.service import records
from shared.access import store
from shared.audit import AuditEntry
from shared.contracts.events import Channel, ContactOutcomeV1
from shared.db import asyncpg_url
from tests.api.support import ServiceApi, Tenant, assert_problem, unique
from tests.helpers import zone_where_local_hour_is_in

pytestmark = pytest.mark.integration


def phone() -> str:
    """A mobile number no other test dials (the number cap counts every tenant's calls to it)."""
    return f"+86139{secrets.randbelow(10**8):08d}"


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


def attempt(customer: str, **extra: Any) -> dict[str, Any]:
    return {"attempt_id": unique("dial"), "account_id": f"A-{customer}", "customer_id": customer, "channel": "call",
            "outcome": "no_answer", "started_at": ago(minutes=1), **extra}


async def post(api: ServiceApi, headers: dict[str, str], body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    response = await api.client.post("/v1/contact-attempts", json=body, headers=headers)
    assert response.status_code == status, response.text
    if "destination" in body:
        assert body["destination"] not in response.text  # never the plaintext number
    return response.json()  # type: ignore[no-any-return]


async def check(api: ServiceApi, tenant: Tenant, customer: str, zone: str, **extra: Any) -> dict[str, Any]:
    response = await api.client.post("/v1/checks", json={
        "account_id": f"A-{customer}", "customer_id": customer, "channel": "call", "time_zone": zone, **extra},
        headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def verdict(decision: dict[str, Any], rule_id: str) -> dict[str, Any]:
    return next(r for r in decision["rules_evaluated"] if r["rule_id"] == rule_id)


async def ledger(api: ServiceApi, tenant: Tenant) -> list[ContactLedgerEntry]:
    return await api.all(select(ContactLedgerEntry).where(ContactLedgerEntry.tenant == tenant.id)
                         .order_by(ContactLedgerEntry.id))


async def audited(api: ServiceApi, tenant: Tenant) -> list[AuditEntry]:
    return await api.all(select(AuditEntry).where(AuditEntry.tenant == tenant.id).order_by(AuditEntry.id))


async def issue(infra: Any, tenant: str, roles: set[str], principal: str) -> dict[str, str]:
    engine = create_async_engine(asyncpg_url(infra.database_url), poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            key, _ = await store.issue(conn, tenant=tenant, principal=principal, roles=frozenset(roles),
                                       created_by="test", now=datetime.now(UTC), expires_at=None)
    finally:
        await engine.dispose()
    return {"Authorization": f"Bearer {key.text}"}


async def test_six_unanswered_calls_to_a_number_defer_the_next_call_to_it(
        compliance: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    zone, _ = zone_where_local_hour_is_in(10, 19)
    customer, number, other_number = unique("C"), phone(), phone()
    for n in range(5):
        await post(compliance, tenant_a.headers, attempt(customer, destination=number, started_at=ago(minutes=10 - n)))
    # an inbound call the customer did not pick up, and an outbound one that connected: neither is unanswered
    await post(compliance, tenant_a.headers, attempt(customer, destination=number, direction="inbound"))
    await post(compliance, tenant_a.headers, attempt(customer, destination=number, outcome="connected"))
    five = verdict(await check(compliance, tenant_a, customer, zone, destination=number), "CN-ATTEMPTS")
    assert five["verdict"] == "allow" and five["reason"].startswith("5 unanswered attempts")

    await post(compliance, tenant_a.headers, attempt(customer, destination=number, outcome="busy"))
    decided = await check(compliance, tenant_a, customer, zone, destination=number)
    assert decided["outcome"] in ("deferred", "blocked")
    six = verdict(decided, "CN-ATTEMPTS")
    assert six["verdict"] == "defer" and six["reason"].startswith("6 unanswered attempts to this number today")
    assert datetime.fromisoformat(six["retry_at"]) == next_local_midnight(datetime.now(UTC), zone)
    if decided["outcome"] == "deferred":
        assert datetime.fromisoformat(decided["retry_at"]) >= datetime.fromisoformat(six["retry_at"])
    # another number of the same customer is not capped; the cap is the number's whichever lender dials it
    assert verdict(await check(compliance, tenant_a, customer, zone, destination=other_number),
                   "CN-ATTEMPTS")["verdict"] == "allow"
    assert verdict(await check(compliance, tenant_b, unique("C"), zone, destination=number),
                   "CN-ATTEMPTS")["verdict"] == "defer"
    # kept as the key /v1/checks computes, never in clear
    keys = {r.destination_key for r in await ledger(compliance, tenant_a)}
    assert keys == {compliance.runtime.identity.contact_point_key(channel="call", destination=number)}


async def test_conversations_an_agent_reports_count_for_cn_connects(compliance: ServiceApi, tenant_a: Tenant) -> None:
    zone, _ = zone_where_local_hour_is_in(10, 19)
    customer = unique("C")
    await post(compliance, tenant_a.headers, attempt(customer, outcome="connected", destination=phone()))
    await post(compliance, tenant_a.headers, attempt(customer, outcome="right_party_contact", direction="inbound"))
    two = verdict(await check(compliance, tenant_a, customer, zone), "CN-CONNECTS")
    assert two["verdict"] == "allow" and two["reason"].startswith("2 conversations")
    await post(compliance, tenant_a.headers, attempt(customer, outcome="voicemail"))  # not a conversation
    await post(compliance, tenant_a.headers, attempt(customer, outcome="connected"))
    decided = await check(compliance, tenant_a, customer, zone)
    assert decided["outcome"] != "approved"
    three = verdict(decided, "CN-CONNECTS")
    assert three["verdict"] == "defer" and three["reason"].startswith("3 conversations with this debtor today")
    budget = (await compliance.client.get(f"/v1/customers/{customer}/contact-budget", params={"time_zone": zone},
                                          headers=tenant_a.headers)).json()
    assert next(c for c in budget["channels"] if c["channel"] == "call")["left"] == 0


async def test_the_same_attempt_is_recorded_once_and_its_newest_outcome_wins(
        compliance: ServiceApi, infra: Any, tenant_a: Tenant) -> None:
    api = compliance
    agent = await issue(infra, tenant_a.id, {"agent"}, principal="agent-wang")
    customer, number = unique("C"), phone()
    body = attempt(customer, destination=number, outcome="connected", started_at=ago(minutes=30),
                   ended_at=ago(minutes=29), national_id="110101 19900307 1234")
    first = await post(api, agent, body)
    assert {k: first[k] for k in ("attempt_id", "contact_id", "source", "outcome", "agent_id", "channel",
                                  "direction", "destination_recorded")} == {
        "attempt_id": body["attempt_id"], "contact_id": f"agent:{body['attempt_id']}", "source": "agent",
        "outcome": "connected", "agent_id": "agent-wang", "channel": "call", "direction": "outbound",
        "destination_recorded": True}
    again = await post(api, agent, body, status=200)  # a retry: nothing new
    assert again == first
    [row] = await ledger(api, tenant_a)
    assert row.borrower_key == api.runtime.identity.borrower_key(national_id="110101199003071234", phone=None)
    assert [(a.principal, a.action, a.subject) for a in await audited(api, tenant_a)] == [
        ("agent-wang", "contact-attempt.created", f"agent:{body['attempt_id']}")]

    later = await post(api, agent, body | {"outcome": "right_party_contact", "ended_at": ago(minutes=28)},
                       status=200)
    assert (later["outcome"], later["started_at"]) == ("right_party_contact", first["started_at"])
    older = await post(api, agent, body | {"outcome": "no_answer", "ended_at": ago(minutes=29, seconds=30)},
                       status=200)
    assert older == later  # an outcome older than the one kept changes nothing
    assert len(await ledger(api, tenant_a)) == 1
    assert [a.action for a in await audited(api, tenant_a)] == ["contact-attempt.created", "contact-attempt.updated"]
    # the same attempt id for another contact is refused, and changes nothing
    for clash in ({"customer_id": unique("C")}, {"channel": "field"}, {"destination": phone()}):
        assert_problem(await api.client.post("/v1/contact-attempts", json=body | clash, headers=agent), 409)
    [row] = await ledger(api, tenant_a)
    assert (row.customer_id, row.channel, row.outcome) == (customer, "call", "right_party_contact")


async def test_the_borrower_key_comes_from_the_ledger_else_the_phone(compliance: ServiceApi, tenant_a: Tenant) -> None:
    identity = compliance.runtime.identity
    known, unknown = unique("C"), unique("C")
    segmented_key = identity.borrower_key(national_id="ID-" + unique("n"), phone=None)
    async with compliance.runtime.units() as uow:  # a channels outcome carried the key segmentation computed
        await records.record_outcomes(uow, outcomes=[ContactOutcomeV1(
            tenant=tenant_a.id, contact_id=unique("c"), account_id="A1", customer_id=known, channel=Channel.SMS,
            outcome="delivered", occurred_at=datetime.now(UTC) - timedelta(days=2), borrower_key=segmented_key)])
        await uow.commit()
    number = phone()
    await post(compliance, tenant_a.headers, attempt(known, destination=number, attempt_id="k1"))
    await post(compliance, tenant_a.headers, attempt(unknown, destination=number, attempt_id="u1"))
    await post(compliance, tenant_a.headers, attempt(unique("C"), channel="email", outcome="sent",
                                                     destination="Kunde@Example.com", attempt_id="e1"))
    rows = {r.contact_id: r for r in await ledger(compliance, tenant_a)}
    assert rows["agent:k1"].borrower_key == segmented_key
    assert rows["agent:u1"].borrower_key == identity.borrower_key(national_id=None, phone=number)
    assert rows["agent:e1"].borrower_key is None
    assert rows["agent:e1"].destination_key == identity.contact_point_key(channel="email",
                                                                          destination="kunde@example.com")


async def test_attempts_are_listed_newest_first_per_tenant(compliance: ServiceApi, tenant_a: Tenant,
                                                           tenant_b: Tenant) -> None:
    customer = unique("C")
    for minutes, attempt_id in ((30, "old"), (10, "new"), (20, "mid")):
        await post(compliance, tenant_a.headers, attempt(customer, attempt_id=attempt_id, destination=phone(),
                                                         started_at=ago(minutes=minutes)))
    # tenant B may use the same attempt id for its own customer of the same id: its own row
    await post(compliance, tenant_b.headers, attempt(customer, attempt_id="new", outcome="connected"))

    async def listed(tenant: Tenant, **params: Any) -> list[dict[str, Any]]:
        response = await compliance.client.get("/v1/contact-attempts", params=params, headers=tenant.headers)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    mine = await listed(tenant_a, customer_id=customer)
    assert [a["attempt_id"] for a in mine] == ["new", "mid", "old"]
    assert all("destination" not in k or k == "destination_recorded" for a in mine for k in a)
    assert [a["attempt_id"] for a in await listed(tenant_a, account_id=f"A-{customer}", limit=1)] == ["new"]
    theirs = await listed(tenant_b, customer_id=customer)
    assert [(a["attempt_id"], a["outcome"]) for a in theirs] == [("new", "connected")]
    assert await listed(tenant_b, customer_id=unique("C")) == []
    assert [a["outcome"] for a in await listed(tenant_a, customer_id=customer)] == ["no_answer"] * 3
    assert_problem(await compliance.client.get("/v1/contact-attempts", headers=tenant_a.headers), 422)


@pytest.mark.parametrize("change", [
    pytest.param({"started_at": "2026-03-01T08:00:00"}, id="no-offset"),
    pytest.param({"started_at": "soon"}, id="not-a-time"),
    pytest.param({"started_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}, id="future"),
    pytest.param({"started_at": ago(days=40)}, id="too-old"),
    pytest.param({"ended_at": ago(hours=1)}, id="ended-before-started"),
    pytest.param({"channel": "sms", "outcome": "no_answer"}, id="sms-unanswered"),
    pytest.param({"channel": "email", "outcome": "connected"}, id="email-connected"),
    pytest.param({"outcome": "approved"}, id="approved"),
    pytest.param({"outcome": "hung_up"}, id="unknown-outcome"),
    pytest.param({"channel": "pigeon"}, id="unknown-channel"),
    pytest.param({"direction": "sideways"}, id="unknown-direction"),
    pytest.param({"destination": "not a phone"}, id="call-to-no-number"),
    pytest.param({"channel": "email", "outcome": "sent", "destination": "+8613900000000"}, id="email-no-address"),
    pytest.param({"attempt_id": ""}, id="empty-attempt-id"),
    pytest.param({"attempt_id": "x" * 129}, id="long-attempt-id"),
    pytest.param({"agent_id": "someone-else"}, id="agent-id-of-ones-choosing"),
    pytest.param({"customer_id": None}, id="no-customer"),
    pytest.param(None, id="not-an-object"),
])
async def test_a_bad_attempt_is_a_422_and_stores_nothing(compliance: ServiceApi, tenant_a: Tenant,
                                                         change: dict[str, Any] | None) -> None:
    body: Any = [] if change is None else attempt(unique("C"), destination=phone()) | change
    problem = assert_problem(await compliance.client.post("/v1/contact-attempts", json=body,
                                                          headers=tenant_a.headers), 422)
    assert problem["title"] == "Invalid request"
    assert await ledger(compliance, tenant_a) == []
    assert await audited(compliance, tenant_a) == []


async def test_reporting_needs_the_role_agent_supervisor_or_compliance(
        compliance: ServiceApi, infra: Any, tenant_a: Tenant) -> None:
    customer = unique("C")
    for role in ("partner", "admin"):
        headers = await issue(infra, tenant_a.id, {role}, principal=unique(role))
        problem = assert_problem(await compliance.client.post("/v1/contact-attempts", json=attempt(customer),
                                                              headers=headers), 403)
        assert "agent" in problem["detail"]
        listed = await compliance.client.get("/v1/contact-attempts", params={"customer_id": customer}, headers=headers)
        assert (listed.status_code, listed.json()) == (200, [])  # reads take any role
    assert_problem(await compliance.client.post("/v1/contact-attempts", json=attempt(customer)), 401)
    assert await ledger(compliance, tenant_a) == [] and await audited(compliance, tenant_a) == []
    for role in ("agent", "supervisor", "compliance"):
        headers = await issue(infra, tenant_a.id, {role}, principal=f"{role}-1")
        assert (await post(compliance, headers, attempt(customer)))["agent_id"] == f"{role}-1"
    async with compliance.runtime.sessions() as session:
        count = (await session.execute(select(func.count()).select_from(ContactLedgerEntry).where(
            ContactLedgerEntry.tenant == tenant_a.id))).scalar_one()
    assert count == 3

"""Compliance's records over REST, through the ASGI app on the real database: holds, suppressions, consents, the
calendar, complaints, agencies and the contact budget; per tenant, validated, 404 for what is not yours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from services.compliance.db.models import SuppressionRow
from tests.api.support import ServiceApi, Tenant, assert_problem, unique

pytestmark = pytest.mark.integration
WHY = {"reason": "entered by mistake"}


async def post(api: ServiceApi, tenant: Tenant, path: str, body: Any, status: int = 201,
               actor: str | None = None) -> dict[str, Any]:
    headers = tenant.headers | ({"X-Actor": actor} if actor else {})
    response = await api.client.post(path, json=body, headers=headers)
    assert response.status_code == status, response.text
    return response.json()  # type: ignore[no-any-return]


async def get(api: ServiceApi, tenant: Tenant, path: str, **params: Any) -> Any:
    response = await api.client.get(path, params=params, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_holds_are_placed_listed_and_lifted_with_who_and_why_per_tenant(
        compliance: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    customer = unique("C")
    hold = await post(compliance, tenant_a, "/v1/holds", {"kind": "dispute", "customer_id": customer,
                                                          "account_id": "A1", "reason": "disputes the balance"},
                      actor="agent-7")
    # who is the API key's principal (a key of the API_KEYS setting: static:<tenant>); X-Actor is ignored
    assert (hold["kind"], hold["source"], hold["created_by"], hold["lifted_at"]) == (
        "dispute", "rest", f"static:{tenant_a.id}", None)
    assert [h["id"] for h in await get(compliance, tenant_a, "/v1/holds", customer_id=customer, active="true")] == [
        hold["id"]]
    assert await get(compliance, tenant_b, "/v1/holds", customer_id=customer) == []
    assert_problem(await compliance.client.post(f"/v1/holds/{hold['id']}/lift", json={"reason": "mine now"},
                                                headers=tenant_b.headers), 404)
    lifted = await post(compliance, tenant_a, f"/v1/holds/{hold['id']}/lift", {"reason": "verified"}, status=200)
    assert (lifted["lift_reason"], lifted["lifted_by"]) == ("verified", f"static:{tenant_a.id}") and lifted["lifted_at"]
    assert_problem(await compliance.client.post(f"/v1/holds/{hold['id']}/lift", json={"reason": "again"},
                                                headers=tenant_a.headers), 409)
    assert await get(compliance, tenant_a, "/v1/holds", customer_id=customer, active="true") == []
    assert len(await get(compliance, tenant_a, "/v1/holds", customer_id=customer, active="false")) == 1


@pytest.mark.parametrize("body", [
    pytest.param({"kind": "dispute", "customer_id": "C1"}, id="no-reason"),
    pytest.param({"kind": "dispute", "customer_id": "C1", "reason": ""}, id="empty-reason"),
    pytest.param({"kind": "nap", "customer_id": "C1", "reason": "r"}, id="unknown-kind"),
    pytest.param({"kind": "dispute", "customer_id": "C1", "reason": "r", "ends_at": "2000-01-01T00:00:00Z"},
                 id="ends-in-the-past"),
    pytest.param({"kind": "dispute", "customer_id": "C1", "reason": "r", "ends_at": "2999-01-01T00:00:00"},
                 id="naive-time"),
])
async def test_a_bad_hold_is_a_422_and_stores_nothing(compliance: ServiceApi, tenant_a: Tenant, body: Any) -> None:
    assert_problem(await compliance.client.post("/v1/holds", json=body, headers=tenant_a.headers), 422)
    assert await get(compliance, tenant_a, "/v1/holds") == []


async def test_suppressions_keep_only_the_key_of_a_destination(compliance: ServiceApi, tenant_a: Tenant,
                                                               tenant_b: Tenant) -> None:
    customer = unique("C")
    phone = "+86 139-0000-0042"
    created = await post(compliance, tenant_a, "/v1/suppressions", {
        "kind": "opt_out", "customer_id": customer, "destination": phone, "channel": "sms", "reason": "replied TD"})
    key = compliance.runtime.identity.contact_point_key(channel="sms", destination=phone)
    assert created["destination_key"] == key and "destination" not in created
    window = await post(compliance, tenant_a, "/v1/suppressions", {
        "kind": "inconvenient_time", "customer_id": customer, "local_start": "12:00", "local_end": "14:00",
        "reason": "lunch"})
    async with compliance.runtime.sessions() as session:
        stored = (await session.execute(text("SELECT row_to_json(s)::text FROM suppressions s WHERE tenant = :t"),
                                        {"t": tenant_a.id})).scalars().all()
    assert len(stored) == 2 and not any("0042" in row for row in stored)
    assert {s["id"] for s in await get(compliance, tenant_a, "/v1/suppressions", customer_id=customer)} == {
        created["id"], window["id"]}
    assert await get(compliance, tenant_b, "/v1/suppressions", customer_id=customer) == []
    assert_problem(await compliance.client.post(f"/v1/suppressions/{created['id']}/remove",
                                                json={"reason": "x"}, headers=tenant_b.headers), 404)
    removed = await post(compliance, tenant_a, f"/v1/suppressions/{created['id']}/remove",
                         {"reason": "opted back in"}, status=200)
    assert removed["removed_at"] and removed["remove_reason"] == "opted back in"
    for bad in ({"kind": "opt_out", "reason": "r"},
                {"kind": "inconvenient_time", "customer_id": customer, "reason": "r"},
                {"kind": "opt_out", "customer_id": customer, "local_start": "12:00", "local_end": "13:00",
                 "reason": "r"},
                {"kind": "opt_out", "customer_id": customer}):
        assert_problem(await compliance.client.post("/v1/suppressions", json=bad, headers=tenant_a.headers), 422)
    assert len(await compliance.all(select(SuppressionRow).where(SuppressionRow.tenant == tenant_a.id))) == 2


async def test_consents_are_granted_and_revoked_per_tenant(compliance: ServiceApi, tenant_a: Tenant,
                                                           tenant_b: Tenant) -> None:
    customer = unique("C")
    consent = await post(compliance, tenant_a, "/v1/consents", {
        "kind": "window", "customer_id": customer, "channel": "call", "local_start": "07:00", "local_end": "08:00",
        "source": "call recording", "reason": "asked for early calls"})
    assert consent["revoked_at"] is None and consent["local_start"] == "07:00:00"
    assert await get(compliance, tenant_b, "/v1/consents", customer_id=customer) == []
    assert_problem(await compliance.client.post(f"/v1/consents/{consent['id']}/revoke", json={"reason": "x"},
                                                headers=tenant_b.headers), 404)
    revoked = await post(compliance, tenant_a, f"/v1/consents/{consent['id']}/revoke", {"reason": "asked"}, 200)
    assert revoked["revoked_at"]
    assert_problem(await compliance.client.post("/v1/consents", json={
        "kind": "window", "customer_id": customer, "channel": "call", "reason": "r"}, headers=tenant_a.headers), 422)


async def test_the_calendar_lists_the_tenants_days_off(compliance: ServiceApi, tenant_a: Tenant,
                                                       tenant_b: Tenant) -> None:
    response = await compliance.client.put("/v1/calendar", json={"country": "CN", "reason": "we follow CN"},
                                       headers=tenant_a.headers)
    assert response.status_code == 200, response.text
    await post(compliance, tenant_a, "/v1/calendar/overrides", {"day": "2031-02-03", "kind": "day_off",
                                                               "name": "company day", "reason": "offsite"})
    await post(compliance, tenant_a, "/v1/calendar/overrides", {"day": "2031-10-01", "kind": "working_day",
                                                               "name": "we open on National Day",
                                                               "reason": "branch open"})
    calendar = await get(compliance, tenant_a, "/v1/calendar", year=2031)
    days = {d["day"]: d["name"] for d in calendar["days_off"]}
    assert calendar["public_holidays_included"] is True
    assert days["2031-02-03"] == "company day"                       # the tenant's own day off
    assert "2031-01-01" in days and "2031-10-02" in days             # China's public holidays
    assert "2031-10-01" not in days                                  # the tenant's working day wins
    other = await get(compliance, tenant_b, "/v1/calendar", year=2031)
    assert "2031-02-03" not in {d["day"] for d in other["days_off"]} and "2031-10-01" in {
        d["day"] for d in other["days_off"]}
    assert_problem(await compliance.client.delete("/v1/calendar/overrides/2031-02-03", params=WHY,
                                                  headers=tenant_b.headers), 404)
    assert (await compliance.client.delete("/v1/calendar/overrides/2031-10-01", params=WHY, headers=tenant_a.headers)
            ).status_code == 204
    assert_problem(await compliance.client.delete("/v1/calendar/overrides/2031-02-03", headers=tenant_a.headers),
                   422)  # no reason
    deleted = await compliance.client.delete("/v1/calendar/overrides/2031-02-03", params=WHY, headers=tenant_a.headers)
    assert deleted.status_code == 204
    assert_problem(await compliance.client.delete("/v1/calendar/overrides/2031-02-03", params=WHY,
                                                  headers=tenant_a.headers), 404)
    assert_problem(await compliance.client.get("/v1/calendar", headers=tenant_a.headers), 422)
    assert_problem(await compliance.client.put("/v1/calendar", json={"country": "china", "reason": "r"},
                                               headers=tenant_a.headers), 422)


async def test_a_complaint_holds_its_account_until_answered(compliance: ServiceApi, tenant_a: Tenant,
                                                            tenant_b: Tenant) -> None:
    customer, account = unique("C"), unique("A")
    received = datetime.now(UTC) - timedelta(days=1)
    complaint = await post(compliance, tenant_a, "/v1/complaints", {
        "customer_id": customer, "account_id": account, "received_at": received.isoformat(), "channel": "phone",
        "summary": "calls at night", "reason": "taken on the phone"})
    assert complaint["status"] == "open" and complaint["summary"] == "calls at night"
    assert datetime.fromisoformat(complaint["due_at"]) == received + timedelta(days=15)
    [hold] = await get(compliance, tenant_a, "/v1/holds", account_id=account, active="true")
    assert (hold["kind"], hold["source_ref"]) == ("complaint", complaint["id"])
    assert await get(compliance, tenant_b, "/v1/complaints", status="open") == []
    extend = f"/v1/complaints/{complaint['id']}/extend"
    # the approver is the API key's principal, never the requester; an approved_by in the body is ignored
    same = {"days": 45, "reason": "file needed", "requested_by": f"static:{tenant_a.id}", "approved_by": "wang"}
    assert_problem(await compliance.client.post(extend, json=same, headers=tenant_a.headers), 422)
    asked = same | {"requested_by": "li"}
    assert_problem(await compliance.client.post(extend, json=asked, headers=tenant_b.headers), 404)
    extended = await post(compliance, tenant_a, extend, asked, 200)
    assert datetime.fromisoformat(extended["due_at"]) == received + timedelta(days=45)
    assert (extended["extension_requested_by"], extended["extension_approved_by"]) == ("li", f"static:{tenant_a.id}")
    assert_problem(await compliance.client.post(extend, json=asked | {"days": 61}, headers=tenant_a.headers), 422)
    assert_problem(await compliance.client.post(f"/v1/complaints/{complaint['id']}/answer", json={},
                                                headers=tenant_a.headers), 422)  # no reason
    answered = await post(compliance, tenant_a, f"/v1/complaints/{complaint['id']}/answer",
                          {"reason": "letter 42 sent"}, 200)
    assert (answered["status"], answered["answered_by"]) == ("answered", f"static:{tenant_a.id}")
    assert await get(compliance, tenant_a, "/v1/holds", account_id=account, active="true") == []
    assert_problem(await compliance.client.post(f"/v1/complaints/{unique('cmp')}/answer", json={"reason": "r"},
                                                headers=tenant_a.headers), 404)


async def test_agencies_are_registered_and_assigned(compliance: ServiceApi, tenant_a: Tenant,
                                                    tenant_b: Tenant) -> None:
    response = await compliance.client.put("/v1/agencies/AG1", json={"name": "Agency One", "listed": True,
                                                                     "evaluated_on": "2025-01-10",
                                                                     "reason": "contract signed"},
                                           headers=tenant_a.headers)
    assert response.status_code == 200, response.text
    assert [a["agency_id"] for a in await get(compliance, tenant_a, "/v1/agencies")] == ["AG1"]
    assert await get(compliance, tenant_b, "/v1/agencies") == []
    assigned = await post(compliance, tenant_a, "/v1/accounts/A1/agency", {
        "agency_id": "AG1", "debtor_notified_at": "2025-02-01T00:00:00Z", "reason": "90 days past due"}, 200)
    assert assigned["agency_id"] == "AG1"
    assert_problem(await compliance.client.post("/v1/accounts/A1/agency", json={"agency_id": "AG1", "reason": "r"},
                                                headers=tenant_b.headers), 404)


async def test_the_contact_budget_shows_caps_holds_and_suppressions(compliance: ServiceApi, tenant_a: Tenant,
                                                                    tenant_b: Tenant) -> None:
    customer = unique("C")
    budget = await get(compliance, tenant_a, f"/v1/customers/{customer}/contact-budget")
    assert budget["time_zone"] == "Asia/Shanghai" and budget["caps_source"] == "defaults (no policy published)"
    assert {c["channel"]: c["left"] for c in budget["channels"]} == {"sms": 1, "email": None, "call": 3,
                                                                     "field": None}
    await post(compliance, tenant_a, "/v1/holds", {"kind": "deceased", "customer_id": customer, "reason": "notice"})
    await post(compliance, tenant_a, "/v1/suppressions", {"kind": "do_not_call", "customer_id": customer,
                                                          "channel": "call", "reason": "asked"})
    held = await get(compliance, tenant_a, f"/v1/customers/{customer}/contact-budget", time_zone="UTC")
    assert {c["channel"]: c["left"] for c in held["channels"]} == {"sms": 0, "email": 0, "call": 0, "field": 0}
    assert len(held["holds"]) == 1 and len(held["suppressions"]) == 1
    other = await get(compliance, tenant_b, f"/v1/customers/{customer}/contact-budget")
    assert other["holds"] == [] and other["suppressions"] == []
    assert_problem(await compliance.client.get(f"/v1/customers/{customer}/contact-budget",
                                               params={"time_zone": "Mars/Olympus"}, headers=tenant_a.headers), 422)

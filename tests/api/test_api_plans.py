"""Plans routes through the ASGI app on the real database: POST /v1/plans, GET /v1/plans?account_id=,
GET /v1/plans/{plan_id}, POST /v1/plans/{plan_id}/cancel.

A plan is agreed only for an account the plans consumer knows from its overdue notice: each test first hands
the notice (and payments) to the real consumer handlers (tests/plans/support.py), then calls the route."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import select

from services.plans.db.models import Plan, PlanInstalment
from shared.audit import AuditEntry
from shared.contracts import topics
from shared.contracts.events import PlanEventV1
from shared.db import table_of
from tests.api.support import ServiceApi, Tenant, assert_problem, unique
from tests.api.test_api_compliance_attempts import issue
from tests.plans.support import consume, overdue_notice, payment_received

pytestmark = pytest.mark.integration


def today() -> date:
    return datetime.now(UTC).date()  # the route's "today"


def in_days(n: int) -> str:
    return (today() + timedelta(days=n)).isoformat()


def plan_body(account_id: str, *, customer_id: str = "C-1", currency: str = "CNY",
              instalments: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"account_id": account_id, "customer_id": customer_id, "currency": currency, "reason": "job loss",
            "instalments": instalments if instalments is not None else [
                {"due_date": in_days(10), "amount": "300.00"}, {"due_date": in_days(40), "amount": "500.00"}]}


DEFAULT_TOTAL = 80_000  # plan_body's default instalments: 300.00 + 500.00


async def known(api: ServiceApi, tenant: Tenant, account_id: str, *, overdue_minor: int = DEFAULT_TOTAL,
                currency: str = "CNY", at: datetime | None = None, customer_id: str = "C-1") -> None:
    """The plans consumer received the account's overdue notice (by default, owing exactly what the default
    plan body totals)."""
    await consume(api.runtime.sessions, overdue_notice(tenant.id, account_id, overdue_minor=overdue_minor,
                                                       currency=currency, at=at, customer_id=customer_id))


async def plans_of(api: ServiceApi, tenant: Tenant, account_id: str) -> list[Plan]:
    return await api.all(select(Plan).where(Plan.tenant == tenant.id, Plan.account_id == account_id))


async def agree(api: ServiceApi, tenant: Tenant, account_id: str, **kwargs: Any) -> dict[str, Any]:
    """Agree a plan for an account already known to plans."""
    response = await api.client.post("/v1/plans", json=plan_body(account_id, **kwargs), headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_agreeing_a_plan_stores_it_and_announces_it_in_the_same_transaction(
        plans: ServiceApi, tenant_a: Tenant) -> None:
    account = unique("ACC")
    await known(plans, tenant_a, account, customer_id="C-77")
    response = await plans.client.post("/v1/plans", json=plan_body(account, customer_id="C-77"),
                                       headers=tenant_a.headers)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert (body["account_id"], body["customer_id"], body["currency"], body["status"], body["reason"]) == (
        account, "C-77", "CNY", "agreed", "job loss")
    assert (body["total"], body["total_minor"], body["paid_minor"]) == ("800.00", 80_000, 0)
    assert (body["kind"], body["written_off"], body["written_off_minor"], body["quote_id"], body["made_by"]) == (
        "custom", "0.00", 0, None, None)
    assert [(i["seq"], i["due_date"], i["amount"], i["amount_minor"], i["paid_minor"], i["status"])
            for i in body["instalments"]] == [(1, in_days(10), "300.00", 30_000, 0, "due"),
                                              (2, in_days(40), "500.00", 50_000, 0, "due")]

    [stored] = await plans_of(plans, tenant_a, account)
    assert (stored.plan_id, stored.status, stored.total_minor, stored.customer_id) == (
        body["plan_id"], "agreed", 80_000, "C-77")
    instalments = await plans.all(select(PlanInstalment).where(PlanInstalment.plan_id == stored.plan_id)
                                  .order_by(PlanInstalment.seq))
    assert [(i.seq, i.due_date.isoformat(), i.amount_minor) for i in instalments] == [
        (1, in_days(10), 30_000), (2, in_days(40), 50_000)]

    [row] = await plans.outbox(tenant_a)
    assert (row.topic, row.key) == (topics.PLAN_EVENT.name, f"{tenant_a.id}:C-77".encode())
    event = row.event
    assert (event.type, event.tenant, event.subject, event.source) == (
        topics.PLAN_EVENT.event_type, tenant_a.id, stored.plan_id, "urn:gentle-collections:plans")
    payload = PlanEventV1.model_validate(event.data)
    assert (payload.kind, payload.plan_id, payload.account_id, payload.total_minor, payload.currency) == (
        "agreed", stored.plan_id, account, 80_000, "CNY")
    assert [(i.seq, i.due_date.isoformat(), i.amount_minor) for i in payload.instalments] == [
        (1, in_days(10), 30_000), (2, in_days(40), 50_000)]


@pytest.mark.parametrize(("currency", "amounts", "shown", "minor"), [
    ("JPY", ["1000", "2500"], ["1000", "2500"], [1000, 2500]),
    ("KWD", ["1.250", "0.5"], ["1.250", "0.500"], [1250, 500]),
    ("CNY", ["0.01", "7"], ["0.01", "7.00"], [1, 700]),
])
async def test_amounts_are_decimal_strings_with_the_currency_exponent(
        plans: ServiceApi, tenant_a: Tenant, currency: str, amounts: list[str], shown: list[str],
        minor: list[int]) -> None:
    account = unique("ACC")
    await known(plans, tenant_a, account, currency=currency, overdue_minor=sum(minor))
    body = await agree(plans, tenant_a, account, currency=currency, instalments=[
        {"due_date": in_days(1 + n), "amount": a} for n, a in enumerate(amounts)])
    assert [i["amount"] for i in body["instalments"]] == shown
    assert [i["amount_minor"] for i in body["instalments"]] == minor
    assert body["total_minor"] == sum(minor)
    [row] = await plans.outbox(tenant_a)
    assert [i["amount_minor"] for i in row.event.data["instalments"]] == minor


async def test_an_idempotent_replay_returns_the_same_plan_with_200_and_announces_nothing_new(
        plans: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    account = unique("ACC")
    await known(plans, tenant_a, account)
    await known(plans, tenant_b, account)  # tenant B's own account with the same id
    key = {"Idempotency-Key": unique("idem")}
    first = await plans.client.post("/v1/plans", json=plan_body(account), headers=tenant_a.headers | key)
    assert first.status_code == 201, first.text
    again = await plans.client.post("/v1/plans", json=plan_body(account), headers=tenant_a.headers | key)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert len(await plans_of(plans, tenant_a, account)) == 1
    assert len(await plans.outbox(tenant_a)) == 1

    # the same key in another tenant is another request, not a replay of tenant A's
    other = await plans.client.post("/v1/plans", json=plan_body(account), headers=tenant_b.headers | key)
    assert other.status_code == 201, other.text
    assert other.json()["plan_id"] != first.json()["plan_id"]
    assert len(await plans_of(plans, tenant_a, account)) == 1
    assert len(await plans.outbox(tenant_b)) == 1


async def test_an_empty_idempotency_key_does_not_tie_unrelated_plans_together(
        plans: ServiceApi, tenant_a: Tenant) -> None:
    empty = tenant_a.headers | {"Idempotency-Key": ""}
    one, two = unique("ACC"), unique("ACC")
    await known(plans, tenant_a, one)
    await known(plans, tenant_a, two)
    first = await plans.client.post("/v1/plans", json=plan_body(one), headers=empty)
    assert first.status_code == 201, first.text
    second = await plans.client.post("/v1/plans", json=plan_body(two), headers=empty)
    assert second.status_code == 201, second.text


async def test_a_second_agreed_plan_for_the_account_is_a_409_and_changes_nothing(
        plans: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    account = unique("ACC")
    await known(plans, tenant_a, account)
    await known(plans, tenant_b, account)
    first = await agree(plans, tenant_a, account)
    response = await plans.client.post("/v1/plans", json=plan_body(account), headers=tenant_a.headers
                                       | {"Idempotency-Key": unique("idem")})
    problem = assert_problem(response, 409)
    assert problem["title"] == "Plan already agreed"
    assert first["plan_id"] in problem["detail"]
    assert [p.plan_id for p in await plans_of(plans, tenant_a, account)] == [first["plan_id"]]
    assert len(await plans.outbox(tenant_a)) == 1
    # another tenant's account with the same id is another account
    assert (await agree(plans, tenant_b, account))["plan_id"] != first["plan_id"]


PAST, SOON, LATER = -1, 5, 35


@pytest.mark.parametrize(("instalments", "currency", "in_detail"), [
    pytest.param([(PAST, "100.00")], "CNY", "in the past", id="past-date"),
    pytest.param([(SOON, "100.00"), (SOON, "100.00")], "CNY", "strictly increase", id="same-date-twice"),
    pytest.param([(LATER, "100.00"), (SOON, "100.00")], "CNY", "strictly increase", id="decreasing-dates"),
    pytest.param([(SOON, "0")], "CNY", "positive", id="zero-amount"),
    pytest.param([(SOON, "0.00"), (LATER, "100")], "CNY", "positive", id="zero-amount-second-form"),
    pytest.param([(SOON, "-50.00")], "CNY", "positive", id="negative-amount"),
    pytest.param([(SOON, "100.001")], "CNY", "decimal places", id="three-decimals-cny"),
    pytest.param([(SOON, "100.5")], "JPY", "decimal places", id="decimals-jpy"),
    pytest.param([(SOON, "1.2345")], "KWD", "decimal places", id="four-decimals-kwd"),
    pytest.param([(SOON + n, "1.00") for n in range(61)], "CNY", "between 1 and 60", id="61-instalments"),
])
async def test_an_unacceptable_schedule_is_a_422_problem_and_stores_nothing(
        plans: ServiceApi, tenant_a: Tenant, instalments: list[tuple[int, str]], currency: str,
        in_detail: str) -> None:
    account = unique("ACC")
    await known(plans, tenant_a, account, currency=currency, overdue_minor=1)  # so only the schedule is at fault
    body = plan_body(account, currency=currency,
                     instalments=[{"due_date": in_days(d), "amount": a} for d, a in instalments])
    response = await plans.client.post("/v1/plans", json=body, headers=tenant_a.headers
                                       | {"Idempotency-Key": unique("idem")})
    problem = assert_problem(response, 422)
    assert problem["title"] == "Plan not acceptable"
    assert in_detail in problem["detail"]
    assert await plans_of(plans, tenant_a, account) == []
    assert await plans.outbox(tenant_a) == []


@pytest.mark.parametrize("change", [
    pytest.param(lambda b: b | {"instalments": []}, id="no-instalments"),
    pytest.param(lambda b: b | {"instalments": [{"due_date": in_days(3), "amount": "abc"}]}, id="amount-not-a-number"),
    pytest.param(lambda b: b | {"instalments": [{"due_date": in_days(3), "amount": "NaN"}]}, id="amount-nan"),
    pytest.param(lambda b: b | {"instalments": [{"due_date": in_days(3), "amount": "12345678901234567"}]},
                 id="amount-over-16-digits"),
    pytest.param(lambda b: b | {"instalments": [{"due_date": "not-a-date", "amount": "1.00"}]}, id="bad-date"),
    pytest.param(lambda b: b | {"currency": "cny"}, id="lowercase-currency"),
    pytest.param(lambda b: b | {"account_id": ""}, id="empty-account"),
    pytest.param(lambda b: b | {"account_id": "x" * 129}, id="account-too-long"),
    pytest.param(lambda b: {k: v for k, v in b.items() if k != "customer_id"}, id="no-customer"),
    pytest.param(lambda b: b | {"reason": "r" * 501}, id="reason-too-long"),
])
async def test_a_malformed_body_is_a_422_problem_and_stores_nothing(
        plans: ServiceApi, tenant_a: Tenant, change: Any) -> None:
    account = unique("ACC")
    response = await plans.client.post("/v1/plans", json=change(plan_body(account)), headers=tenant_a.headers)
    problem = assert_problem(response, 422)
    assert problem["title"] == "Invalid request" and problem["errors"]
    assert await plans_of(plans, tenant_a, account) == []
    assert await plans.outbox(tenant_a) == []


async def test_malformed_json_and_an_overlong_idempotency_key_are_422_problems(
        plans: ServiceApi, tenant_a: Tenant) -> None:
    response = await plans.client.post("/v1/plans", content=b"{not json", headers=tenant_a.headers
                                       | {"content-type": "application/json"})
    assert_problem(response, 422)
    account = unique("ACC")
    response = await plans.client.post("/v1/plans", json=plan_body(account),
                                       headers=tenant_a.headers | {"Idempotency-Key": "k" * 201})
    assert_problem(response, 422)
    assert await plans_of(plans, tenant_a, account) == []
    assert await plans.outbox(tenant_a) == []


async def test_get_plan_shows_your_own_plan_and_is_404_for_another_tenant(
        plans: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    account = unique("ACC")
    await known(plans, tenant_a, account)
    created = await agree(plans, tenant_a, account)
    response = await plans.client.get(f"/v1/plans/{created['plan_id']}", headers=tenant_a.headers)
    assert response.status_code == 200, response.text
    assert response.json() == created

    problem = assert_problem(await plans.client.get(f"/v1/plans/{created['plan_id']}", headers=tenant_b.headers),
                             404)
    assert problem["title"] == "Not found"
    assert_problem(await plans.client.get(f"/v1/plans/{unique('no-such-plan')}", headers=tenant_a.headers), 404)
    assert len(await plans.outbox(tenant_a)) == 1  # reads announce nothing
    assert await plans.outbox(tenant_b) == []


async def test_list_plans_of_an_account_is_per_tenant_and_in_creation_order(
        plans: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    account = unique("ACC")
    assert (await plans.client.get("/v1/plans", params={"account_id": account}, headers=tenant_a.headers)
            ).json() == []
    await known(plans, tenant_a, account)
    first = await agree(plans, tenant_a, account)
    cancelled = await plans.client.post(f"/v1/plans/{first['plan_id']}/cancel", headers=tenant_a.headers)
    assert cancelled.status_code == 200, cancelled.text
    second = await agree(plans, tenant_a, account)  # the account may agree a new plan once the first is cancelled

    response = await plans.client.get("/v1/plans", params={"account_id": account}, headers=tenant_a.headers)
    assert response.status_code == 200, response.text
    listed = response.json()
    assert [(p["plan_id"], p["status"]) for p in listed] == [(first["plan_id"], "cancelled"),
                                                           (second["plan_id"], "agreed")]
    assert listed[1] == second

    other = await plans.client.get("/v1/plans", params={"account_id": account}, headers=tenant_b.headers)
    assert (other.status_code, other.json()) == (200, [])
    assert_problem(await plans.client.get("/v1/plans", headers=tenant_a.headers), 422)  # account_id is required


async def test_cancel_announces_the_cancellation_once_then_is_a_409(
        plans: ServiceApi, tenant_a: Tenant) -> None:
    account = unique("ACC")
    await known(plans, tenant_a, account, customer_id="C-9")
    created = await agree(plans, tenant_a, account, customer_id="C-9")
    response = await plans.client.post(f"/v1/plans/{created['plan_id']}/cancel", headers=tenant_a.headers)
    assert response.status_code == 200, response.text
    assert response.json() | {"status": "agreed"} == created
    assert response.json()["status"] == "cancelled"
    [stored] = await plans_of(plans, tenant_a, account)
    assert stored.status == "cancelled"
    agreed_row, cancelled_row = await plans.outbox(tenant_a)
    assert (cancelled_row.topic, cancelled_row.key) == (topics.PLAN_EVENT.name, f"{tenant_a.id}:C-9".encode())
    payload = PlanEventV1.model_validate(cancelled_row.event.data)
    assert (payload.kind, payload.plan_id, payload.account_id) == ("cancelled", created["plan_id"], account)
    assert cancelled_row.event.subject == created["plan_id"]
    assert agreed_row.event.data["kind"] == "agreed"

    again = await plans.client.post(f"/v1/plans/{created['plan_id']}/cancel", headers=tenant_a.headers)
    problem = assert_problem(again, 409)
    assert problem["title"] == "Plan not active" and "cancelled" in problem["detail"]
    assert len(await plans.outbox(tenant_a)) == 2
    assert (await plans_of(plans, tenant_a, account))[0].status == "cancelled"


async def test_another_tenant_cannot_cancel_your_plan(
        plans: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    account = unique("ACC")
    await known(plans, tenant_a, account)
    created = await agree(plans, tenant_a, account)
    problem = assert_problem(
        await plans.client.post(f"/v1/plans/{created['plan_id']}/cancel", headers=tenant_b.headers), 404)
    assert problem["title"] == "Not found"
    [stored] = await plans_of(plans, tenant_a, account)
    assert stored.status == "agreed"
    assert await plans.outbox(tenant_b) == []
    assert [r.event.data["kind"] for r in await plans.outbox(tenant_a)] == ["agreed"]
    assert_problem(await plans.client.post(f"/v1/plans/{unique('nope')}/cancel", headers=tenant_a.headers), 404)


@pytest.mark.parametrize("headers", [
    pytest.param({}, id="no-key"),
    pytest.param({"Authorization": "Bearer not-a-key"}, id="unknown-key"),
    pytest.param({"X-API-Key": "not-a-key"}, id="unknown-x-api-key"),
    pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="wrong-scheme"),
])
async def test_every_plans_route_needs_a_valid_api_key(
        plans: ServiceApi, tenant_a: Tenant, headers: dict[str, str]) -> None:
    account = unique("ACC")
    await known(plans, tenant_a, account)
    created = await agree(plans, tenant_a, account)
    pid = created["plan_id"]
    new_account = unique("ACC")
    for method, path, kwargs in (
            ("POST", "/v1/plans", {"json": plan_body(new_account)}),
            ("GET", "/v1/plans", {"params": {"account_id": account}}),
            ("GET", f"/v1/plans/{pid}", {}),
            ("POST", f"/v1/plans/{pid}/cancel", {})):
        problem = assert_problem(await plans.client.request(method, path, headers=headers, **kwargs), 401)
        assert problem["title"] == "Unauthorized"
    [stored] = await plans_of(plans, tenant_a, account)
    assert stored.status == "agreed"
    assert len(await plans.outbox(tenant_a)) == 1
    assert await plans.all(select(Plan).where(Plan.account_id == new_account)) == []
    assert await plans.outbox_containing(new_account) == []
    ok = await plans.client.get(f"/v1/plans/{pid}", headers={"X-API-Key": tenant_a.key})
    assert ok.status_code == 200  # the X-API-Key form works with a valid key


@pytest.mark.parametrize("amount", [300, 300.0, 0.1])
async def test_an_amount_sent_as_a_json_number_is_a_422_saying_so(
        plans: ServiceApi, tenant_a: Tenant, amount: float) -> None:
    account = unique("ACC")
    body = plan_body(account, instalments=[{"due_date": in_days(10), "amount": amount}])
    problem = assert_problem(await plans.client.post("/v1/plans", json=body, headers=tenant_a.headers), 422)
    assert any("decimal string" in e["msg"] for e in problem["errors"])
    assert await plans_of(plans, tenant_a, account) == []


async def test_the_same_idempotency_key_with_another_body_is_a_422_and_changes_nothing(
        plans: ServiceApi, tenant_a: Tenant) -> None:
    account, key = unique("ACC"), unique("idem")
    await known(plans, tenant_a, account)
    headers = tenant_a.headers | {"Idempotency-Key": key}
    first = await plans.client.post("/v1/plans", json=plan_body(account), headers=headers)
    assert first.status_code == 201, first.text
    same = await plans.client.post("/v1/plans", json=plan_body(account), headers=headers)
    assert (same.status_code, same.json()["plan_id"]) == (200, first.json()["plan_id"])
    other = plan_body(account, instalments=[{"due_date": in_days(10), "amount": "999.00"}])
    problem = assert_problem(await plans.client.post("/v1/plans", json=other, headers=headers), 422)
    assert problem["title"] == "Idempotency-Key reused" and first.json()["plan_id"] in problem["detail"]
    assert [p.total_minor for p in await plans_of(plans, tenant_a, account)] == [80_000]


async def assert_nothing_stored(plans: ServiceApi, tenant: Tenant, account_id: str) -> None:
    assert await plans_of(plans, tenant, account_id) == []
    assert await plans.outbox(tenant) == []
    assert await plans.outbox_containing(account_id) == []


async def test_a_plan_for_an_account_plans_does_not_know_is_a_404_saying_why_and_stores_nothing(
        plans: ServiceApi, tenant_a: Tenant) -> None:
    account, key = unique("ACC"), {"Idempotency-Key": unique("idem")}
    response = await plans.client.post("/v1/plans", json=plan_body(account), headers=tenant_a.headers | key)
    problem = assert_problem(response, 404)
    assert problem["title"] == "Account not known to plans"
    assert account in problem["detail"] and "overdue notice" in problem["detail"]
    assert "retry shortly" in problem["detail"]
    await assert_nothing_stored(plans, tenant_a, account)

    # once the notice has arrived, the same request (same Idempotency-Key: none was recorded) is agreed
    await known(plans, tenant_a, account)
    response = await plans.client.post("/v1/plans", json=plan_body(account), headers=tenant_a.headers | key)
    assert response.status_code == 201, response.text
    assert len(await plans.outbox(tenant_a)) == 1


async def test_a_plan_on_another_tenants_account_is_the_same_404_and_stores_nothing(
        plans: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    account, never_seen = unique("ACC"), unique("ACC")
    await known(plans, tenant_a, account)  # tenant A's account, known to plans
    unknown = assert_problem(await plans.client.post("/v1/plans", json=plan_body(never_seen),
                                                     headers=tenant_b.headers), 404)
    response = await plans.client.post("/v1/plans", json=plan_body(account), headers=tenant_b.headers
                                       | {"Idempotency-Key": unique("idem")})
    problem = assert_problem(response, 404)
    assert problem["title"] == unknown["title"] == "Account not known to plans"
    # the answer does not reveal that the account exists in another tenant
    assert problem["detail"].replace(account, "<id>") == unknown["detail"].replace(never_seen, "<id>")
    assert await plans_of(plans, tenant_b, account) == []
    assert await plans.outbox(tenant_b) == []
    assert await plans_of(plans, tenant_a, account) == []  # and nothing happened to tenant A's account
    assert await plans.outbox(tenant_a) == []
    assert (await agree(plans, tenant_a, account))["account_id"] == account  # its servicer may


async def test_a_plan_in_another_currency_than_the_account_is_a_422_and_stores_nothing(
        plans: ServiceApi, tenant_a: Tenant) -> None:
    account = unique("ACC")
    await known(plans, tenant_a, account, currency="CNY")
    body = plan_body(account, currency="USD", instalments=[{"due_date": in_days(10), "amount": "100000.00"}])
    problem = assert_problem(await plans.client.post("/v1/plans", json=body, headers=tenant_a.headers
                                                     | {"Idempotency-Key": unique("idem")}), 422)
    assert problem["title"] == "Currency mismatch"
    assert problem["detail"] == f"Account '{account}' is in CNY; this plan is in USD. Agree the plan in CNY."
    await assert_nothing_stored(plans, tenant_a, account)


async def test_a_plan_below_the_overdue_amount_is_a_422_stating_both_amounts_and_stores_nothing(
        plans: ServiceApi, tenant_a: Tenant) -> None:
    account, key = unique("ACC"), {"Idempotency-Key": unique("idem")}
    await known(plans, tenant_a, account, overdue_minor=250_000)
    body = plan_body(account, instalments=[{"due_date": in_days(10), "amount": "1.00"}])
    problem = assert_problem(await plans.client.post("/v1/plans", json=body, headers=tenant_a.headers | key), 422)
    assert problem["title"] == "Plan does not cover the overdue amount"
    assert problem["detail"] == ("a plan must cover the 2,500.00 CNY overdue; this one totals 1.00 CNY; waivers "
                                 "need an approval: ask for a quote (POST /v1/accounts/{account_id}/quotes) and agree "
                                 "one of its offers")
    await assert_nothing_stored(plans, tenant_a, account)
    # one minor unit short is short
    short = plan_body(account, instalments=[{"due_date": in_days(10), "amount": "1000.00"},
                                            {"due_date": in_days(40), "amount": "1499.99"}])
    problem = assert_problem(await plans.client.post("/v1/plans", json=short, headers=tenant_a.headers), 422)
    assert "this one totals 2,499.99 CNY" in problem["detail"]
    await assert_nothing_stored(plans, tenant_a, account)

    # exactly the amount overdue is agreed; the key was not used up by the refusals
    exact = plan_body(account, instalments=[{"due_date": in_days(10), "amount": "1000.00"},
                                            {"due_date": in_days(40), "amount": "1500.00"}])
    response = await plans.client.post("/v1/plans", json=exact, headers=tenant_a.headers | key)
    assert response.status_code == 201, response.text
    assert (response.json()["total"], response.json()["status"]) == ("2500.00", "agreed")
    [row] = await plans.outbox(tenant_a)
    assert row.event.data["kind"] == "agreed"


async def test_payments_booked_after_the_notice_count_and_those_before_it_do_not(
        plans: ServiceApi, tenant_a: Tenant) -> None:
    account = unique("ACC")
    as_of = datetime.now(UTC) - timedelta(days=1)
    sessions = plans.runtime.sessions
    # the payments reach plans before the notice: kept, and counted once the account appears
    await consume(sessions, payment_received(tenant_a.id, account, f"P-{uuid4()}", 100_000,
                                             paid_at=as_of - timedelta(hours=1)),
                  payment_received(tenant_a.id, account, f"P-{uuid4()}", 50_000, paid_at=as_of + timedelta(hours=1)))
    await known(plans, tenant_a, account, overdue_minor=250_000, at=as_of)

    # owed: 2,500.00 less the 500.00 booked after the notice (the 1,000.00 before it is already in it)
    low = plan_body(account, instalments=[{"due_date": in_days(10), "amount": "1999.99"}])
    problem = assert_problem(await plans.client.post("/v1/plans", json=low, headers=tenant_a.headers), 422)
    assert problem["detail"].startswith("a plan must cover the 2,000.00 CNY overdue; this one totals 1,999.99 CNY")
    await assert_nothing_stored(plans, tenant_a, account)
    body = plan_body(account, instalments=[{"due_date": in_days(10), "amount": "2000.00"}])
    response = await plans.client.post("/v1/plans", json=body, headers=tenant_a.headers)
    assert response.status_code == 201, response.text


async def test_a_late_older_notice_does_not_change_what_a_plan_must_cover(
        plans: ServiceApi, tenant_a: Tenant) -> None:
    account = unique("ACC")
    now = datetime.now(UTC)
    await known(plans, tenant_a, account, overdue_minor=250_000, at=now)
    await known(plans, tenant_a, account, overdue_minor=10_000, at=now - timedelta(days=3))  # late and older
    body = plan_body(account, instalments=[{"due_date": in_days(10), "amount": "100.00"}])
    problem = assert_problem(await plans.client.post("/v1/plans", json=body, headers=tenant_a.headers), 422)
    assert "must cover the 2,500.00 CNY overdue; this one totals 100.00 CNY" in problem["detail"]
    await assert_nothing_stored(plans, tenant_a, account)
    # a newer notice does
    await known(plans, tenant_a, account, overdue_minor=10_000, at=now + timedelta(seconds=1))
    response = await plans.client.post("/v1/plans", json=body, headers=tenant_a.headers)
    assert response.status_code == 201, response.text


async def test_a_plan_naming_another_customer_than_the_account_is_a_422_and_stores_nothing(
        plans: ServiceApi, tenant_a: Tenant) -> None:
    account = unique("ACC")
    await known(plans, tenant_a, account)
    body = plan_body(account, customer_id="C-somebody-else")
    problem = assert_problem(await plans.client.post("/v1/plans", json=body, headers=tenant_a.headers), 422)
    assert problem["title"] == "Customer mismatch" and "C-somebody-else" in problem["detail"]
    await assert_nothing_stored(plans, tenant_a, account)


async def test_a_plan_for_an_account_paid_since_its_notice_is_a_409_and_stores_nothing(
        plans: ServiceApi, tenant_a: Tenant) -> None:
    account = unique("ACC")
    as_of = datetime.now(UTC) - timedelta(hours=1)
    await known(plans, tenant_a, account, overdue_minor=80_000, at=as_of)
    await consume(plans.runtime.sessions, payment_received(tenant_a.id, account, f"P-{uuid4()}", 80_000,
                                                           paid_at=as_of + timedelta(minutes=1)))
    problem = assert_problem(await plans.client.post("/v1/plans", json=plan_body(account),
                                                     headers=tenant_a.headers), 409)
    assert problem["title"] == "Nothing overdue" and "no plan is needed" in problem["detail"]
    await assert_nothing_stored(plans, tenant_a, account)


async def test_agreeing_and_cancelling_need_a_writer_role_and_are_audited_with_the_reason(
        plans: ServiceApi, infra: Any, tenant_a: Tenant) -> None:
    account = unique("ACC")
    await known(plans, tenant_a, account)
    strategist = await issue(infra, tenant_a.id, {"strategist"}, principal="strategist-x")
    assert_problem(await plans.client.post("/v1/plans", json=plan_body(account), headers=strategist), 403)
    agent = await issue(infra, tenant_a.id, {"agent"}, principal="agent-zhou")
    made = await plans.client.post("/v1/plans", json=plan_body(account), headers=agent)
    assert made.status_code == 201, made.text
    plan_id = made.json()["plan_id"]
    assert_problem(await plans.client.post(f"/v1/plans/{plan_id}/cancel", json={"reason": "x"}, headers=strategist),
                   403)
    assert_problem(await plans.client.post(f"/v1/plans/{plan_id}/cancel", json={"reason": "x", "extra": 1},
                                           headers=agent), 422)
    cancelled = await plans.client.post(f"/v1/plans/{plan_id}/cancel", json={"reason": "customer paid in full"},
                                        headers=agent)
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    audit = table_of(AuditEntry)
    async with plans.runtime.sessions() as session:
        rows = (await session.execute(select(audit.c.principal, audit.c.action, audit.c.reason).where(
            audit.c.tenant == tenant_a.id, audit.c.subject == f"plan:{plan_id}").order_by(audit.c.id))).all()
    assert [tuple(r) for r in rows] == [("agent-zhou", "plan.agree", "job loss"),
                                       ("agent-zhou", "plan.cancel", "customer paid in full")]

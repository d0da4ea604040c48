"""Promise-to-pay routes of plans through the ASGI app on the real database: POST/GET
/v1/accounts/{account_id}/promises, GET /v1/promises/{promise_id}, POST /v1/promises/{promise_id}/cancel. Roles,
hostile input (422, never a 500, nothing stored) and tenancy (another tenant's ids are 404)."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from services.plans import promises
from services.plans.db.promises import PlanPromise
from services.plans.workers import monitor
from shared.audit import AuditEntry
from shared.contracts import topics
from shared.contracts.events import PromiseEventV1
from tests.api.support import ServiceApi, Tenant, assert_problem, unique
from tests.api.test_api_access import bearer, issue
from tests.plans.support import consume, overdue_notice

pytestmark = pytest.mark.integration


def local_today() -> date:
    return datetime.now(ZoneInfo("Asia/Shanghai")).date()  # the accounts below are in Shanghai


def body(**changes: Any) -> dict[str, Any]:
    return {"amount": "500.00", "currency": "CNY", "due_on": (local_today() + timedelta(days=3)).isoformat(),
            "reason": "salary on Friday"} | changes


async def known(api: ServiceApi, tenant: Tenant, *, currency: str = "CNY") -> str:
    account = unique("ACC")
    await consume(api.runtime.sessions, overdue_notice(tenant.id, account, currency=currency, customer_id="C-9"))
    return account


async def stored(api: ServiceApi, tenant: Tenant) -> list[PlanPromise]:
    return await api.all(select(PlanPromise).where(PlanPromise.tenant == tenant.id))  # type: ignore[arg-type]


async def test_a_promise_is_made_read_listed_and_cancelled_with_events_and_audit(
        plans: ServiceApi, tenant_a: Tenant) -> None:
    account = await known(plans, tenant_a)
    response = await plans.client.post(f"/v1/accounts/{account}/promises", json=body(), headers=tenant_a.headers)
    assert response.status_code == 201, response.text
    made = response.json()
    due_on = local_today() + timedelta(days=3)
    deadline = datetime.combine(due_on + timedelta(days=3), datetime.min.time(), tzinfo=ZoneInfo("Asia/Shanghai"))
    assert (made["account_id"], made["customer_id"], made["status"], made["source"], made["currency"]) == (
        account, "C-9", "open", "agent", "CNY")  # a static key has every role: an agent's by default
    assert (made["amount"], made["amount_minor"], made["paid"], made["paid_minor"], made["due_on"]) == (
        "500.00", 50_000, "0.00", 0, due_on.isoformat())
    assert datetime.fromisoformat(made["deadline"]) == deadline
    assert (made["made_by"], made["reason"]) == (f"static:{tenant_a.id}", "salary on Friday")

    [row] = await plans.outbox(tenant_a)
    assert (row.topic, row.key, row.event.subject) == (topics.PROMISE_EVENT.name, f"{tenant_a.id}:C-9".encode(),
                                                       made["promise_id"])
    event = PromiseEventV1.model_validate(row.event.data)
    assert (event.status, event.amount_minor, event.due_on, event.deadline) == ("open", 50_000, due_on, deadline)

    got = await plans.client.get(f"/v1/promises/{made['promise_id']}", headers=tenant_a.headers)
    assert (got.status_code, got.json()) == (200, made)
    listed = await plans.client.get(f"/v1/accounts/{account}/promises", headers=tenant_a.headers)
    assert (listed.status_code, listed.json()) == (200, [made])

    again = await plans.client.post(f"/v1/accounts/{account}/promises", json=body(), headers=tenant_a.headers)
    assert_problem(again, 409)

    cancelled = await plans.client.post(f"/v1/promises/{made['promise_id']}/cancel",
                                        json={"reason": "customer withdrew"}, headers=tenant_a.headers)
    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["status"], cancelled.json()["cancel_reason"]) == ("cancelled", "customer withdrew")
    assert [PromiseEventV1.model_validate(r.event.data).status for r in await plans.outbox(tenant_a)] == [
        "open", "cancelled"]
    assert_problem(await plans.client.post(f"/v1/promises/{made['promise_id']}/cancel", json={"reason": "again"},
                                           headers=tenant_a.headers), 409)
    audit = await plans.all(select(AuditEntry).where(AuditEntry.tenant == tenant_a.id).order_by(AuditEntry.id))  # type: ignore[arg-type]
    assert [(a.action, a.subject, a.reason, a.principal) for a in audit] == [
        ("promise.make", f"promise:{made['promise_id']}", "salary on Friday", f"static:{tenant_a.id}"),
        ("promise.cancel", f"promise:{made['promise_id']}", "customer withdrew", f"static:{tenant_a.id}")]


@pytest.mark.parametrize(("roles", "asked", "status", "source"), [
    ({"agent"}, None, 201, "agent"),
    ({"supervisor"}, None, 201, "agent"),
    ({"partner"}, None, 201, "partner"),
    ({"partner"}, "strategy", 201, "strategy"),
    ({"agent", "partner"}, "partner", 201, "partner"),
    ({"agent"}, "strategy", 403, None),
    ({"partner"}, "agent", 403, None),
    ({"compliance"}, None, 403, None),
    ({"strategist", "admin"}, None, 403, None),
])
async def test_who_may_make_a_promise_and_its_source(plans: ServiceApi, infra: Any, tenant_a: Tenant,
                                                     roles: set[str], asked: str | None, status: int,
                                                     source: str | None) -> None:
    account = await known(plans, tenant_a)
    key = await issue(infra, tenant_a.id, roles, principal="caller-1")
    response = await plans.client.post(f"/v1/accounts/{account}/promises",
                                       json=body(**({"source": asked} if asked else {})), headers=bearer(key))
    if status == 201:
        assert response.status_code == 201, response.text
        assert (response.json()["source"], response.json()["made_by"]) == (source, "caller-1")
        [row] = await stored(plans, tenant_a)
        assert row.source == source
    else:
        assert_problem(response, status)
        assert await stored(plans, tenant_a) == []
        assert await plans.outbox(tenant_a) == []
    # reads take any role
    assert (await plans.client.get(f"/v1/accounts/{account}/promises", headers=bearer(key))).status_code == 200


async def test_cancelling_needs_a_writer_role(plans: ServiceApi, infra: Any, tenant_a: Tenant) -> None:
    account = await known(plans, tenant_a)
    made = (await plans.client.post(f"/v1/accounts/{account}/promises", json=body(),
                                    headers=tenant_a.headers)).json()
    officer = await issue(infra, tenant_a.id, {"compliance"})
    assert_problem(await plans.client.post(f"/v1/promises/{made['promise_id']}/cancel", json={"reason": "x"},
                                           headers=bearer(officer)), 403)
    assert [r.status for r in await stored(plans, tenant_a)] == ["open"]


@pytest.mark.parametrize("changes", [
    {"amount": 500.0}, {"amount": 500}, {"amount": "500.0.0"}, {"amount": "-5.00"}, {"amount": "0"},
    {"amount": "0.00"}, {"amount": "1.234"}, {"amount": "1e3"}, {"amount": "NaN"}, {"amount": "Infinity"},
    {"amount": "99999999999999.99"}, {"amount": "9" * 40}, {"amount": ""}, {"amount": None},
    {"currency": "USD"}, {"currency": "XXX"}, {"currency": "cny"}, {"currency": "CN\u0000"},
    {"due_on": "9999-12-31"}, {"due_on": "2000-01-01"}, {"due_on": "2026-13-45"}, {"due_on": "0"},
    {"due_on": 20261205}, {"due_on": (local_today() + timedelta(days=31)).isoformat()},
    {"due_on": (local_today() - timedelta(days=1)).isoformat()},
    {"reason": "nul\u0000byte"}, {"reason": "x" * 501}, {"reason": 5},
    {"source": "portal"}, {"source": "robot"}, {"source": "agent\u0000"},
])
async def test_hostile_input_is_a_422_and_stores_nothing(plans: ServiceApi, tenant_a: Tenant,
                                                         changes: dict[str, Any]) -> None:
    account = await known(plans, tenant_a)
    response = await plans.client.post(f"/v1/accounts/{account}/promises", json=body(**changes),
                                       headers=tenant_a.headers)
    assert_problem(response, 422)
    assert await stored(plans, tenant_a) == []
    assert await plans.outbox(tenant_a) == []


@pytest.mark.parametrize("raw", [b"", b"[]", b"null", b"{", b'{"amount": "500.00"}', "\u0000".encode()])
async def test_malformed_bodies_are_a_422(plans: ServiceApi, tenant_a: Tenant, raw: bytes) -> None:
    account = await known(plans, tenant_a)
    response = await plans.client.post(f"/v1/accounts/{account}/promises", content=raw,
                                       headers=tenant_a.headers | {"content-type": "application/json"})
    assert_problem(response, 422)
    assert await stored(plans, tenant_a) == []


@pytest.mark.parametrize("path", ["/v1/accounts/A%00B/promises", "/v1/promises/P%00Q", "/v1/promises/" + "p" * 65,
                                  "/v1/accounts/" + "a" * 129 + "/promises"])
async def test_hostile_ids_are_a_422_never_a_500(plans: ServiceApi, tenant_a: Tenant, path: str) -> None:
    assert_problem(await plans.client.get(path, headers=tenant_a.headers), 422)
    if path.endswith("/promises"):
        assert_problem(await plans.client.post(path, json=body(), headers=tenant_a.headers), 422)
    else:
        assert_problem(await plans.client.post(f"{path}/cancel", json={"reason": "x"}, headers=tenant_a.headers),
                       422)


async def test_another_currencys_exponent_and_an_unknown_account(plans: ServiceApi, tenant_a: Tenant) -> None:
    account = await known(plans, tenant_a, currency="JPY")
    response = await plans.client.post(f"/v1/accounts/{account}/promises",
                                       json=body(amount="5000", currency="JPY"), headers=tenant_a.headers)
    assert response.status_code == 201, response.text
    assert (response.json()["amount"], response.json()["amount_minor"]) == ("5000", 5000)
    problem = assert_problem(await plans.client.post(f"/v1/accounts/{unique('ACC')}/promises", json=body(),
                                                     headers=tenant_a.headers), 404)
    assert "not known to plans" in problem["detail"]


async def test_another_tenants_promises_and_accounts_are_404(plans: ServiceApi, tenant_a: Tenant,
                                                           tenant_b: Tenant) -> None:
    account = await known(plans, tenant_a)
    made = (await plans.client.post(f"/v1/accounts/{account}/promises", json=body(),
                                    headers=tenant_a.headers)).json()
    assert_problem(await plans.client.get(f"/v1/promises/{made['promise_id']}", headers=tenant_b.headers), 404)
    assert_problem(await plans.client.get(f"/v1/accounts/{account}/promises", headers=tenant_b.headers), 404)
    assert_problem(await plans.client.post(f"/v1/promises/{made['promise_id']}/cancel", json={"reason": "x"},
                                           headers=tenant_b.headers), 404)
    assert_problem(await plans.client.post(f"/v1/accounts/{account}/promises", json=body(),
                                           headers=tenant_b.headers), 404)
    assert await stored(plans, tenant_b) == []
    assert [r.status for r in await stored(plans, tenant_a)] == ["open"]
    assert await plans.outbox(tenant_b) == []
    assert (await plans.client.get(f"/v1/promises/{made['promise_id']}")).status_code == 401


async def test_the_monitor_loop_decides_a_promise_past_its_deadline(open_api: Any, tenant_a: Tenant) -> None:
    plans = await open_api("plans", monitor_interval_seconds=0.05)
    account = await known(plans, tenant_a)
    async with plans.runtime.units() as uow:  # made ten days ago, due the next day: its deadline has passed
        made_at = datetime.now(ZoneInfo("UTC")) - timedelta(days=10)
        view = await promises.make_promise(uow, tenant=tenant_a.id, account_id=account, amount_minor=50_000,
                                           currency="CNY", due_on=made_at.date() + timedelta(days=1),
                                           source="partner", made_by="core", now=made_at)
        await uow.commit()
    loop = asyncio.create_task(monitor.monitor_loop(plans.runtime))
    try:
        for _ in range(200):
            if [r.status for r in await stored(plans, tenant_a)] == ["broken"]:
                break
            await asyncio.sleep(0.05)
    finally:
        plans.runtime.stopping.set()
        await asyncio.wait_for(loop, 5)
    assert [r.status for r in await stored(plans, tenant_a)] == ["broken"]
    assert [(e.subject, PromiseEventV1.model_validate(e.data).status) for e in
            (r.event for r in await plans.outbox(tenant_a))] == [(view.promise_id, "open"), (view.promise_id, "broken")]


async def test_a_refused_promise_lists_every_reason_the_unreadable_amount_included(
        plans: ServiceApi, tenant_a: Tenant) -> None:
    account = await known(plans, tenant_a)
    past = (local_today() - timedelta(days=5)).isoformat()
    problem = assert_problem(await plans.client.post(
        f"/v1/accounts/{account}/promises", json=body(amount="0.001", currency="USD", due_on=past),
        headers=tenant_a.headers), 422)
    reasons = [e["msg"] for e in problem["errors"]]
    assert [r.split(":")[0] for r in reasons] == ["amount", "currency", "due_on"], reasons
    assert await stored(plans, tenant_a) == []

"""Channels routes through the ASGI app on the real database: GET /v1/contacts?account_id= and
POST /v1/webhooks/sms/receipts?token=..., with contact attempts put in place by the channels use case
(services/channels/service.py record_approved) and, for sent SMS, its repository."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from services.channels import service
from services.channels.db import repository as repo
from services.channels.db.models import ContactAttempt
from services.channels.settings import DEV_WEBHOOK_TOKEN
from shared.contracts import topics
from shared.contracts.events import ContactApprovedV1, ContactOutcomeV1, ContactRequestV1
from tests.api.support import CIPHER, OpenService, ServiceApi, Tenant, assert_problem, unique

pytestmark = pytest.mark.integration
RECEIPTS = "/v1/webhooks/sms/receipts"


def approval(tenant: Tenant, account_id: str, *, channel: str = "sms", contact_id: str | None = None,
             customer_id: str = "C-1") -> ContactApprovedV1:
    destination = {"sms": "+8613900000001", "call": "+8613900000001", "email": "kunde@example.com",
                   "field": "上海市"}[channel]
    return ContactApprovedV1(decision_id=str(uuid.uuid4()), request=ContactRequestV1(
        tenant=tenant.id, contact_id=contact_id or unique("c"), attempt=1, account_id=account_id,
        customer_id=customer_id, channel=channel, treatment_step="reminder", segment="standard", days_past_due=5,
        destination=CIPHER.seal(destination, context=tenant.id), time_zone="Asia/Shanghai", locale="zh-CN",
        template_id={"sms": "reminder.sms", "email": "reminder.email", "call": "call.script",
                     "field": "field.visit"}[channel],
        currency="CNY", overdue_minor=1_000, due_date=date.today() - timedelta(days=5),
        requested_at=datetime.now(UTC)))


async def seed(api: ServiceApi, approvals: Sequence[ContactApprovedV1], *, sent: dict[str, str] | None = None) -> None:
    """Record the approvals (one unit of work); the ``sent`` ones (contact id -> provider ref) as the
    provider accepted them."""
    async with api.runtime.units() as uow:
        assert await service.record_approved(uow, approved=approvals) == len(approvals)
        await repo.store(uow.session, [
            {"contact_id": cid, "status": "sent", "provider_ref": ref, "detail": None,
             "next_try_at": datetime.now(UTC)} for cid, ref in (sent or {}).items()])
        await uow.commit()


async def attempts(api: ServiceApi, tenant: Tenant) -> dict[str, ContactAttempt]:
    rows = await api.all(select(ContactAttempt).where(ContactAttempt.tenant == tenant.id))
    return {a.contact_id: a for a in rows}


def snapshot(rows: dict[str, ContactAttempt]) -> dict[str, tuple[Any, ...]]:
    return {cid: (a.status, a.provider_ref, a.detail, a.tries, a.next_try_at, a.updated_at) for cid, a in rows.items()}


async def test_contact_history_is_newest_first_and_per_tenant(
        channels: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    account = unique("ACC")
    sms, call, email = (approval(tenant_a, account, channel=c) for c in ("sms", "call", "email"))
    for a in (sms, call, email):  # one transaction each: distinct created_at
        await seed(channels, [a])
    await seed(channels, [approval(tenant_a, unique("ACC"))])  # another account of the same tenant
    stored = await attempts(channels, tenant_a)
    outbox_before = await channels.outbox(tenant_a)
    [task_outcome] = outbox_before  # a call becomes an agent task at once, and says so
    assert task_outcome.topic == topics.CONTACT_OUTCOME.name
    assert ContactOutcomeV1.model_validate(task_outcome.event.data).outcome == "task_created"

    response = await channels.client.get("/v1/contacts", params={"account_id": account}, headers=tenant_a.headers)
    assert response.status_code == 200, response.text
    listed = response.json()
    ids = [a.request.contact_id for a in (email, call, sms)]
    assert [c["contact_id"] for c in listed] == ids
    for shown in listed:
        row = stored[shown["contact_id"]]
        assert {k: v for k, v in shown.items() if k not in ("created_at", "updated_at")} == {
            "contact_id": row.contact_id, "account_id": account, "channel": row.channel,
            "template_id": row.template_id, "status": row.status, "tries": 0, "provider_ref": None, "detail": None}
        assert datetime.fromisoformat(shown["created_at"]) == row.created_at
    assert [c["status"] for c in listed] == ["sending", "task_created", "sending"]
    assert "destination" not in response.text and "+8613900000001" not in response.text

    limited = await channels.client.get("/v1/contacts", params={"account_id": account, "limit": 2},
                                        headers=tenant_a.headers)
    assert [c["contact_id"] for c in limited.json()] == ids[:2]
    other = await channels.client.get("/v1/contacts", params={"account_id": account}, headers=tenant_b.headers)
    assert (other.status_code, other.json()) == (200, [])
    assert await channels.outbox(tenant_a) == outbox_before


@pytest.mark.parametrize("params", [
    pytest.param({}, id="no-account"),
    pytest.param({"account_id": "A", "limit": 0}, id="limit-0"),
    pytest.param({"account_id": "A", "limit": 1001}, id="limit-1001"),
])
async def test_a_bad_contacts_query_is_a_422_problem(channels: ServiceApi, tenant_a: Tenant,
                                                     params: dict[str, Any]) -> None:
    assert_problem(await channels.client.get("/v1/contacts", params=params, headers=tenant_a.headers), 422)


async def test_contacts_need_a_valid_api_key(channels: ServiceApi, tenant_a: Tenant) -> None:
    account = unique("ACC")
    await seed(channels, [approval(tenant_a, account)])
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Bearer {tenant_a.key}x"}):
        assert_problem(await channels.client.get("/v1/contacts", params={"account_id": account}, headers=headers), 401)


@pytest.fixture
async def receipts_api(open_api: OpenService) -> tuple[ServiceApi, str]:
    token = f"hook-{uuid.uuid4().hex}"
    return await open_api("channels", webhook_token=token), token


def receipt(contact_id: str, status: str, message_id: str = "m-1") -> dict[str, Any]:
    return {"message_id": message_id, "client_ref": contact_id, "status": status,
            "delivered_at": datetime.now(UTC).isoformat()}


async def test_receipts_mark_sent_sms_delivered_or_failed_and_announce_failures(
        receipts_api: tuple[ServiceApi, str], tenant_a: Tenant) -> None:
    api, token = receipts_api
    account = unique("ACC")
    delivered, undelivered, not_sent = (approval(tenant_a, account, customer_id=f"C-{n}") for n in range(3))
    mail = approval(tenant_a, account, channel="email")
    await seed(api, [delivered, undelivered, not_sent, mail],
               sent={delivered.request.contact_id: "m-1", undelivered.request.contact_id: "m-2",
                     mail.request.contact_id: "m-3"})
    before = await attempts(api, tenant_a)
    body = {"receipts": [receipt(delivered.request.contact_id, "delivered", "m-1"),
                         receipt(undelivered.request.contact_id, "failed", "m-2"),
                         receipt(not_sent.request.contact_id, "delivered", "m-x"),   # still 'sending': too early
                         receipt(mail.request.contact_id, "delivered", "m-3"),       # not an SMS
                         receipt(unique("unknown"), "delivered", "m-4")]}

    response = await api.client.post(RECEIPTS, params={"token": token}, json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"updated": 2}
    after = await attempts(api, tenant_a)
    assert (after[delivered.request.contact_id].status, after[delivered.request.contact_id].provider_ref) == (
        "delivered", "m-1")
    assert (after[undelivered.request.contact_id].status, after[undelivered.request.contact_id].provider_ref) == (
        "failed", "m-2")
    for unchanged in (not_sent, mail):
        cid = unchanged.request.contact_id
        assert (after[cid].status, after[cid].provider_ref) == (before[cid].status, before[cid].provider_ref)

    [row] = await api.outbox(tenant_a)  # only the failure is announced
    assert (row.topic, row.key) == (topics.CONTACT_OUTCOME.name, f"{tenant_a.id}:C-1".encode())
    outcome = ContactOutcomeV1.model_validate(row.event.data)
    assert (outcome.contact_id, outcome.outcome, outcome.provider_ref, outcome.account_id, outcome.channel) == (
        undelivered.request.contact_id, "failed", "m-2", account, "sms")
    assert (row.event.subject, row.event.source) == (undelivered.request.contact_id, "urn:gentle-collections:channels")

    # the provider retries its webhook: nothing changes twice, nothing is announced twice
    again = await api.client.post(RECEIPTS, params={"token": token}, json=body)
    assert (again.status_code, again.json()) == (200, {"updated": 0})
    assert snapshot(await attempts(api, tenant_a)) == snapshot(after)
    assert len(await api.outbox(tenant_a)) == 1


async def test_receipts_with_a_wrong_or_missing_token_are_refused_and_change_nothing(
        receipts_api: tuple[ServiceApi, str], tenant_a: Tenant) -> None:
    api, token = receipts_api
    sent = approval(tenant_a, unique("ACC"))
    await seed(api, [sent], sent={sent.request.contact_id: "m-1"})
    body = {"receipts": [receipt(sent.request.contact_id, "failed")]}
    before = snapshot(await attempts(api, tenant_a))
    for params, headers in (({}, {}), ({"token": ""}, {}), ({"token": token + "x"}, {}),
                            ({"token": DEV_WEBHOOK_TOKEN}, {}),          # the dev default is not this app's token
                            ({"token": token.upper()}, {}),
                            ({}, tenant_a.headers),                        # an API key is no webhook token
                            ({}, {"X-Token": token})):
        problem = assert_problem(await api.client.post(RECEIPTS, params=params, json=body, headers=headers), 401)
        assert problem["title"] == "Unauthorized"
    [stored] = (await attempts(api, tenant_a)).values()
    assert (stored.status, stored.provider_ref) == ("sent", "m-1")
    assert snapshot(await attempts(api, tenant_a)) == before
    assert await api.outbox(tenant_a) == []


@pytest.mark.parametrize("body", [
    pytest.param({"receipts": [{"message_id": "m", "client_ref": "c", "status": "bounced"}]}, id="unknown-status"),
    pytest.param({"receipts": [{"message_id": "m", "status": "failed"}]}, id="no-client-ref"),
    pytest.param({"receipts": [{"message_id": "m", "client_ref": "c", "status": "failed",
                                "delivered_at": "yesterday"}]}, id="bad-time"),
    pytest.param({}, id="no-receipts"),
    pytest.param("too-many", id="1001-receipts"),
])
async def test_a_malformed_receipt_batch_is_a_422_problem_and_changes_nothing(
        receipts_api: tuple[ServiceApi, str], tenant_a: Tenant, body: Any) -> None:
    api, token = receipts_api
    sent = approval(tenant_a, unique("ACC"))
    await seed(api, [sent], sent={sent.request.contact_id: "m-1"})
    cid = sent.request.contact_id
    before = snapshot(await attempts(api, tenant_a))
    if body == "too-many":
        body = {"receipts": [receipt(cid, "failed")] * 1001}
    else:
        body = copy.deepcopy(body)
        for r in body.get("receipts", []):
            if r.get("client_ref") == "c":
                r["client_ref"] = cid  # a real attempt: only the malformed field makes the batch invalid
    assert_problem(await api.client.post(RECEIPTS, params={"token": token}, json=body), 422)
    assert snapshot(await attempts(api, tenant_a)) == before
    assert before[cid][0] == "sent"
    assert await api.outbox(tenant_a) == []


async def test_a_non_ascii_token_is_a_401_not_a_500(receipts_api: tuple[ServiceApi, str]) -> None:
    api, _ = receipts_api
    response = await api.client.post("/v1/webhooks/sms/receipts", params={"token": "令牌"},
                                     json={"receipts": []})
    assert_problem(response, 401)

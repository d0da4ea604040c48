"""Channels routes through the ASGI app on the real database: GET /v1/contacts?account_id=&status= and
POST /v1/webhooks/sms/receipts (signed: X-Account, X-Timestamp, X-Signature), with contact attempts put in
place by the channels use case (services/channels/service.py record_approved) and, for sent SMS, its
repository. Hostile receipts (bad or missing signature, stale, replayed, another account's, unknown
references, non-ASCII headers) are refused or ignored, never a 500, and change nothing."""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from services.channels import service
from services.channels.db import repository as repo
from services.channels.db.models import ContactAttempt
from services.channels.domain.signatures import signature
from services.channels.settings import DEV_SMS_ACCOUNT, DEV_SMS_WEBHOOK_SECRET
from shared.contracts import topics
from shared.contracts.events import ContactApprovedV1, ContactOutcomeV1, ContactRequestV1
from tests.api.support import CIPHER, OpenService, ServiceApi, Tenant, assert_problem, unique

pytestmark = pytest.mark.integration
RECEIPTS = "/v1/webhooks/sms/receipts"


def approval(tenant: Tenant, account_id: str, *, channel: str = "sms", contact_id: str | None = None,
             customer_id: str = "C-1", account_ref: str | None = None) -> ContactApprovedV1:
    destination = {"sms": "+8613900000001", "call": "+8613900000001", "email": "kunde@example.com",
                   "field": "上海市"}[channel]
    return ContactApprovedV1(decision_id=str(uuid.uuid4()), request=ContactRequestV1(
        tenant=tenant.id, contact_id=contact_id or unique("c"), attempt=1, account_id=account_id,
        account_ref=account_ref,
        customer_id=customer_id, channel=channel, treatment_step="reminder", segment="standard", days_past_due=5,
        destination=CIPHER.seal(destination, context=tenant.id), time_zone="Asia/Shanghai", locale="zh-CN",
        template_id={"sms": "reminder.sms", "email": "reminder.email", "call": "call.script",
                     "field": "field.visit"}[channel],
        currency="CNY", overdue_minor=1_000, due_date=date.today() - timedelta(days=5),
        requested_at=datetime.now(UTC)))


async def seed(api: ServiceApi, approvals: Sequence[ContactApprovedV1], *, sent: dict[str, str] | None = None,
               account: str | None = None, status: str = "sent") -> None:
    """Record the approvals (one unit of work); the ``sent`` ones (contact id -> provider ref) as the
    provider (``account``, default the app's CHANNELS_SMS_ACCOUNT) accepted them, or in ``status``."""
    account = account or api.runtime.settings.sms_account
    async with api.runtime.units() as uow:
        assert await service.record_approved(uow, approved=approvals) == len(approvals)
        await repo.store(uow.session, [
            {"contact_id": cid, "status": status, "provider_ref": ref, "detail": None,
             "next_try_at": datetime.now(UTC), "provider_account": account if ref else None}
            for cid, ref in (sent or {}).items()])
        await uow.commit()


async def attempts(api: ServiceApi, tenant: Tenant) -> dict[str, ContactAttempt]:
    rows = await api.all(select(ContactAttempt).where(ContactAttempt.tenant == tenant.id))
    return {a.contact_id: a for a in rows}


def snapshot(rows: dict[str, ContactAttempt]) -> dict[str, tuple[Any, ...]]:
    return {cid: (a.status, a.provider_ref, a.provider_account, a.detail, a.tries, a.next_try_at, a.updated_at)
            for cid, a in rows.items()}


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
            "contact_id": row.contact_id, "account_id": account, "account_ref": None, "channel": row.channel,
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
    pytest.param({}, id="neither-account-nor-status"),
    pytest.param({"account_id": "A", "limit": 0}, id="limit-0"),
    pytest.param({"account_id": "A", "limit": 1001}, id="limit-1001"),
    pytest.param({"status": "new"}, id="status-new"),
    pytest.param({"status": "UNKNOWN"}, id="status-upper"),
    pytest.param({"status": "未知"}, id="status-non-ascii"),
])
async def test_a_bad_contacts_query_is_a_422_problem(channels: ServiceApi, tenant_a: Tenant,
                                                     params: dict[str, Any]) -> None:
    assert_problem(await channels.client.get("/v1/contacts", params=params, headers=tenant_a.headers), 422)


async def test_contacts_need_a_valid_api_key(channels: ServiceApi, tenant_a: Tenant) -> None:
    account = unique("ACC")
    await seed(channels, [approval(tenant_a, account)])
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Bearer {tenant_a.key}x"}):
        assert_problem(await channels.client.get("/v1/contacts", params={"account_id": account}, headers=headers), 401)


async def test_contacts_by_status_are_the_tenants_own(channels: ServiceApi, tenant_a: Tenant,
                                                     tenant_b: Tenant) -> None:
    account = unique("ACC")
    mine = [approval(tenant_a, account, customer_id=f"C-{n}", account_ref="8842") for n in range(3)]
    theirs = approval(tenant_b, account)
    await seed(channels, mine[:2], sent={a.request.contact_id: unique("m") for a in mine[:2]}, status="unknown")
    await seed(channels, mine[2:], sent={mine[2].request.contact_id: unique("m")})
    await seed(channels, [theirs], sent={theirs.request.contact_id: unique("m")}, status="unknown")

    response = await channels.client.get("/v1/contacts", params={"status": "unknown"}, headers=tenant_a.headers)
    assert response.status_code == 200, response.text
    assert {c["contact_id"] for c in response.json()} == {a.request.contact_id for a in mine[:2]}
    assert {(c["status"], c["account_ref"]) for c in response.json()} == {("unknown", "8842")}
    both = await channels.client.get("/v1/contacts", params={"status": "sent", "account_id": account},
                                     headers=tenant_a.headers)
    assert [c["contact_id"] for c in both.json()] == [mine[2].request.contact_id]
    other = await channels.client.get("/v1/contacts", params={"status": "unknown", "account_id": account},
                                      headers=tenant_b.headers)
    assert [c["contact_id"] for c in other.json()] == [theirs.request.contact_id]


# --- the signed receipt webhook -----------------------------------------------------------------------


@dataclass(frozen=True)
class Hook:
    """The channels app with two provider accounts of its own (fresh secrets), sending through ``ours``."""

    api: ServiceApi
    ours: str
    other: str
    secrets: dict[str, str]

    async def post(self, body: Any, *, account: str | None = None, secret: str | None = None,
                   at: float | None = None, raw: bytes | None = None, signed_over: bytes | None = None,
                   headers: dict[str, Any] | None = None) -> Any:
        """POST ``body`` (or ``raw`` bytes) signed as ``account`` (default ours) with ``secret`` (default
        its own) at ``at`` (default now), over ``signed_over`` (default what is sent); ``headers``
        override the signed ones (None removes one)."""
        account = account or self.ours
        content = raw if raw is not None else json.dumps(body).encode()
        timestamp = str(int(at if at is not None else time.time()))
        key = secret if secret is not None else self.secrets[account]
        signed = {"X-Account": account, "X-Timestamp": timestamp,
                  "X-Signature": signature(key, timestamp, content if signed_over is None else signed_over),
                  "Content-Type": "application/json"}
        signed.update(headers or {})
        return await self.api.client.post(RECEIPTS, content=content,
                                          headers={k: v for k, v in signed.items() if v is not None})


@pytest.fixture
async def hook(open_api: OpenService) -> Hook:
    ours, other = f"acct-{uuid.uuid4().hex[:8]}", f"acct-{uuid.uuid4().hex[:8]}"
    secrets = {ours: f"secret-{uuid.uuid4().hex}", other: f"secret-{uuid.uuid4().hex}"}
    api = await open_api("channels", sms_account=ours, sms_webhook_secrets=secrets)
    return Hook(api, ours, other, secrets)


def receipt(contact_id: str, status: str, message_id: str = "m-1") -> dict[str, Any]:
    return {"message_id": message_id, "client_ref": contact_id, "status": status,
            "delivered_at": datetime.now(UTC).isoformat()}


def counted(result: str) -> float:
    return REGISTRY.get_sample_value("channels_receipts_total", {"source": "webhook", "result": result}) or 0.0


async def test_signed_receipts_mark_sent_sms_delivered_or_failed_and_announce_failures(
        hook: Hook, tenant_a: Tenant) -> None:
    api = hook.api
    account = unique("ACC")
    delivered, undelivered, not_sent = (approval(tenant_a, account, customer_id=f"C-{n}") for n in range(3))
    mail = approval(tenant_a, account, channel="email")
    await seed(api, [delivered, undelivered, not_sent, mail],
               sent={delivered.request.contact_id: "m-1", undelivered.request.contact_id: "m-2",
                     mail.request.contact_id: "m-3"})
    before = await attempts(api, tenant_a)
    body = {"receipts": [receipt(delivered.request.contact_id, "delivered", "m-1"),
                         receipt(undelivered.request.contact_id, "failed", "m-2"),
                         receipt(not_sent.request.contact_id, "delivered", "m-x"),   # still 'sending': not ours yet
                         receipt(mail.request.contact_id, "delivered", "m-3"),       # not an SMS
                         receipt(unique("unknown"), "delivered", "m-4")]}
    unknown_before = counted("unknown_ref")

    response = await hook.post(body)
    assert response.status_code == 200, response.text
    assert response.json() == {"updated": 2, "ignored": 3, "deferred": 0}
    assert counted("unknown_ref") - unknown_before == 3
    after = await attempts(api, tenant_a)
    assert (after[delivered.request.contact_id].status, after[delivered.request.contact_id].provider_ref) == (
        "delivered", "m-1")
    assert (after[undelivered.request.contact_id].status, after[undelivered.request.contact_id].provider_ref) == (
        "failed", "m-2")
    for unchanged in (not_sent, mail):
        cid = unchanged.request.contact_id
        assert snapshot(after)[cid] == snapshot(before)[cid]

    [row] = await api.outbox(tenant_a)  # only the failure is announced
    assert (row.topic, row.key) == (topics.CONTACT_OUTCOME.name, f"{tenant_a.id}:C-1".encode())
    outcome = ContactOutcomeV1.model_validate(row.event.data)
    assert (outcome.contact_id, outcome.outcome, outcome.provider_ref, outcome.account_id, outcome.channel) == (
        undelivered.request.contact_id, "failed", "m-2", account, "sms")
    assert (row.event.subject, row.event.source) == (undelivered.request.contact_id, "urn:gentle-collections:channels")

    # the provider retries its webhook (signed again): nothing changes twice, nothing is announced twice
    again = await hook.post(body)
    assert (again.status_code, again.json()) == (200, {"updated": 0, "ignored": 5, "deferred": 0})
    assert snapshot(await attempts(api, tenant_a)) == snapshot(after)
    assert len(await api.outbox(tenant_a)) == 1


async def test_receipts_count_only_for_our_reference_and_the_account_it_was_sent_through(
        hook: Hook, tenant_a: Tenant, tenant_b: Tenant) -> None:
    api = hook.api
    mine, theirs = approval(tenant_a, unique("ACC")), approval(tenant_b, unique("ACC"))
    await seed(api, [mine], sent={mine.request.contact_id: "m-mine"})
    await seed(api, [theirs], sent={theirs.request.contact_id: "m-theirs"}, account=hook.other)
    before_a, before_b = snapshot(await attempts(api, tenant_a)), snapshot(await attempts(api, tenant_b))
    wrong_before = counted("wrong_account")

    attempts_ = [
        # a valid signature of the other account, for our contact and our reference
        (dict(account=hook.other), receipt(mine.request.contact_id, "failed", "m-mine")),
        # our account, for a contact sent through the other account (another tenant's)
        ({}, receipt(theirs.request.contact_id, "failed", "m-theirs")),
        # the right contact, a reference we were never given
        ({}, receipt(mine.request.contact_id, "failed", "m-guessed")),
        # another tenant's contact named with our reference
        ({}, receipt(theirs.request.contact_id, "failed", "m-mine")),
    ]
    for kwargs, item in attempts_:
        response = await hook.post({"receipts": [item]}, **kwargs)
        assert (response.status_code, response.json()) == (200, {"updated": 0, "ignored": 1, "deferred": 0})
    assert counted("wrong_account") - wrong_before == 2
    assert snapshot(await attempts(api, tenant_a)) == before_a
    assert snapshot(await attempts(api, tenant_b)) == before_b
    assert await api.outbox(tenant_a) == [] and await api.outbox(tenant_b) == []

    # the other account's own receipt for its own message does count
    response = await hook.post({"receipts": [receipt(theirs.request.contact_id, "delivered", "m-theirs")]},
                               account=hook.other)
    assert response.json() == {"updated": 1, "ignored": 0, "deferred": 0}


async def test_a_receipt_that_overtakes_our_record_of_the_send_is_deferred_with_a_503(
        hook: Hook, tenant_a: Tenant) -> None:
    api = hook.api
    done, in_flight = approval(tenant_a, unique("ACC")), approval(tenant_a, unique("ACC"), customer_id="C-2")
    await seed(api, [done], sent={done.request.contact_id: "m-1"})
    await seed(api, [in_flight], sent={in_flight.request.contact_id: None}, status="dispatching")  # type: ignore[dict-item]
    body = {"receipts": [receipt(done.request.contact_id, "delivered", "m-1"),
                         receipt(in_flight.request.contact_id, "delivered", "m-2")]}

    response = await hook.post(body)
    problem = assert_problem(response, 503)
    assert response.headers["Retry-After"] == "1"
    assert (problem["updated"], problem["ignored"], problem["deferred"]) == (1, 0, 1)
    rows = await attempts(api, tenant_a)
    assert (rows[done.request.contact_id].status, rows[in_flight.request.contact_id].status) == (
        "delivered", "dispatching")

    # our record lands, the provider retries the batch: the rest is applied once
    await seed(api, [], sent={in_flight.request.contact_id: "m-2"})
    again = await hook.post(body)
    assert (again.status_code, again.json()) == (200, {"updated": 1, "ignored": 1, "deferred": 0})
    assert (await attempts(api, tenant_a))[in_flight.request.contact_id].status == "delivered"


# each case: what Hook.post is given (the hook, for its secrets)
HOSTILE: dict[str, Callable[[Hook], dict[str, Any]]] = {
    "wrong-secret": lambda h: {"secret": "guess"},
    "other-accounts-secret": lambda h: {"secret": h.secrets[h.other]},  # claims to be ours
    "unknown-account": lambda h: {"account": "acct-nobody", "secret": "x"},
    "dev-default-account": lambda h: {"account": DEV_SMS_ACCOUNT, "secret": DEV_SMS_WEBHOOK_SECRET},
    "stale": lambda h: {"at": time.time() - 301},
    "from-the-future": lambda h: {"at": time.time() + 302},  # + 2: whole seconds are sent
    "replayed-a-year-later": lambda h: {"at": time.time() - 86_400 * 365},
    "no-signature": lambda h: {"headers": {"X-Signature": None}},
    "no-timestamp": lambda h: {"headers": {"X-Timestamp": None}},
    "no-account": lambda h: {"headers": {"X-Account": None}},
    "empty-signature": lambda h: {"headers": {"X-Signature": ""}},
    "non-ascii-account": lambda h: {"headers": {"X-Account": "账户".encode()}},
    "non-ascii-timestamp": lambda h: {"headers": {"X-Timestamp": "１７６００００００".encode()}},
    "non-ascii-signature": lambda h: {"headers": {"X-Signature": ("sha256=" + "签" * 64).encode()}},
    "latin-1-bytes": lambda h: {"headers": {"X-Signature": b"sha256=\xff\xfe", "X-Account": b"\xe9"}},
    "timestamp-not-digits": lambda h: {"headers": {"X-Timestamp": "1.5e9"}},
    "other-scheme": lambda h: {"headers": {"X-Signature": "sha1=" + "0" * 40}},
    "signature-of-another-body": lambda h: {"signed_over": b'{"receipts": []}'},
}


@pytest.mark.parametrize("case", list(HOSTILE))
async def test_hostile_receipts_are_a_401_and_change_nothing(hook: Hook, tenant_a: Tenant, case: str) -> None:
    api = hook.api
    sent = approval(tenant_a, unique("ACC"))
    await seed(api, [sent], sent={sent.request.contact_id: "m-1"})
    body = {"receipts": [receipt(sent.request.contact_id, "failed", "m-1")]}
    before = snapshot(await attempts(api, tenant_a))

    response = await hook.post(body, **HOSTILE[case](hook))

    problem = assert_problem(response, 401)
    assert problem["title"] == "Unauthorized"
    assert all(secret not in response.text for secret in hook.secrets.values())
    assert snapshot(await attempts(api, tenant_a)) == before
    assert await api.outbox(tenant_a) == []


@pytest.mark.parametrize("credentials", [
    pytest.param({"params": {"token": "dev-webhook-token"}}, id="the-old-query-token"),
    pytest.param({"headers": {"Authorization": "Bearer dev-key-tenant-a"}}, id="an-api-key"),
    pytest.param({}, id="nothing"),
])
async def test_unsigned_receipts_are_a_401(hook: Hook, tenant_a: Tenant, credentials: dict[str, Any]) -> None:
    sent = approval(tenant_a, unique("ACC"))
    await seed(hook.api, [sent], sent={sent.request.contact_id: "m-1"})
    before = snapshot(await attempts(hook.api, tenant_a))
    response = await hook.api.client.post(RECEIPTS, json={"receipts": [receipt(sent.request.contact_id, "failed")]},
                                          **credentials)
    assert_problem(response, 401)
    assert snapshot(await attempts(hook.api, tenant_a)) == before


@pytest.mark.parametrize("body", [
    pytest.param({"receipts": [{"message_id": "m", "client_ref": "c", "status": "bounced"}]}, id="unknown-status"),
    pytest.param({"receipts": [{"message_id": "m", "status": "failed"}]}, id="no-client-ref"),
    pytest.param({"receipts": [{"message_id": "m", "client_ref": "c", "status": "failed",
                                "delivered_at": "yesterday"}]}, id="bad-time"),
    pytest.param({"receipts": [{"message_id": "", "client_ref": "c", "status": "failed"}]}, id="empty-ref"),
    pytest.param({}, id="no-receipts"),
    pytest.param("too-many", id="1001-receipts"),
    pytest.param(b"{not json", id="not-json"),
    pytest.param(b"\xff\xfe", id="not-utf8"),
])
async def test_a_malformed_signed_receipt_batch_is_a_422_problem_and_changes_nothing(
        hook: Hook, tenant_a: Tenant, body: Any) -> None:
    api = hook.api
    sent = approval(tenant_a, unique("ACC"))
    await seed(api, [sent], sent={sent.request.contact_id: "m-1"})
    cid = sent.request.contact_id
    before = snapshot(await attempts(api, tenant_a))
    raw = body if isinstance(body, bytes) else None
    if body == "too-many":
        body = {"receipts": [receipt(cid, "failed")] * 1001}
    elif raw is None:
        body = copy.deepcopy(body)
        for r in body.get("receipts", []):
            if r.get("client_ref") == "c":
                r["client_ref"] = cid  # a real attempt: only the malformed field makes the batch invalid
    assert_problem(await hook.post(body, raw=raw), 422)
    assert snapshot(await attempts(api, tenant_a)) == before
    assert before[cid][0] == "sent"
    assert await api.outbox(tenant_a) == []
    # unsigned, the same body is refused before it is even read
    assert_problem(await api.client.post(RECEIPTS, content=raw or json.dumps(body).encode()), 401)

"""Delivery receipts and their reconciliation end to end: the project's SMS sandbox and the channels app,
both served by uvicorn on free ports, real PostgreSQL, the real adapters and workers.

The sandbox signs its receipts (HMAC-SHA256 over timestamp + "." + body, per provider account) and posts
them to the callback the dispatcher named (CHANNELS_PUBLIC_BASE_URL); when channels is unreachable they
are lost, and the reconciler polls the sandbox's status endpoint instead. Each test works on its own tenant."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import select, text

from devstack.embedded import free_port
from devstack.sms_sandbox import create_app as sandbox_app
from services.channels import service
from services.channels.adapters.mail import MailProvider
from services.channels.adapters.sms import SmsProvider
from services.channels.app import create_app as channels_app
from services.channels.db.models import ContactAttempt
from services.channels.settings import DEV_SMS_WEBHOOK_SECRET, Settings
from services.channels.workers.dispatcher import Dispatcher, sms_provider
from services.channels.workers.reconciler import Reconciler
from shared.contracts import CloudEvent
from shared.contracts.events import Channel, ContactApprovedV1, ContactOutcomeV1, ContactRequestV1
from shared.crypto import PiiCipher
from shared.messaging import OutboxEntry
from shared.runtime import Runtime
from shared.settings import DEV_PII_KEYS
from tests.helpers import committed

pytestmark = pytest.mark.integration
CIPHER = PiiCipher(DEV_PII_KEYS, "dev1")
ACCOUNTS = {"sandbox": DEV_SMS_WEBHOOK_SECRET, "acct-b": "secret-of-b"}
OK, FAILS, SILENT = "+8613812345678", "+8613800000000", "+8613800009999"  # delivered, undelivered, never final
PARK = text("UPDATE contact_attempts SET status = 'failed', detail = 'left by a test' "
            "WHERE tenant = :tenant AND status IN ('sending', 'dispatching', 'sent')")
AGE = text("UPDATE contact_attempts SET dispatched_at = now() - make_interval(secs => :ago), next_try_at = now() "
           "WHERE contact_id = ANY(:ids)")


@asynccontextmanager
async def served(app: FastAPI, port: int, *, lifespan: str = "on") -> AsyncIterator[None]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan=lifespan))  # type: ignore[arg-type]
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        assert server.started, "the server did not start"
        yield
    finally:
        server.should_exit = True
        await task


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@dataclass
class Live:
    tenant: str
    api_key: str
    runtime: Runtime[Settings]
    client: httpx.AsyncClient
    channels_url: str
    sandbox_url: str

    def dispatcher(self, *, account: str = "sandbox", callback: bool = True) -> Dispatcher:
        """A dispatcher whose SMS name channels as their receipt callback, or (channels 'down') none."""
        s = self.runtime.settings
        sms = (sms_provider(self.client, s.model_copy(update={"sms_account": account})) if callback else
               SmsProvider(self.client, s.sms_base_url, s.sms_sender, account=account))
        return Dispatcher(self.runtime, sms, MailProvider("127.0.0.1", 9, s.mail_from))

    def reconciler(self) -> Reconciler:
        return Reconciler(self.runtime, sms_provider(self.client, self.runtime.settings))

    def approval(self, n: int, phone: str) -> ContactApprovedV1:
        return ContactApprovedV1(decision_id=str(uuid.uuid4()), request=ContactRequestV1(
            tenant=self.tenant, contact_id=f"{self.tenant}-sms-{n}", attempt=1, account_id=f"ACC-{n}",
            account_ref=f"{n:04d}", customer_id=f"C{n}", channel=Channel.SMS, treatment_step="d5",
            segment="standard", days_past_due=5, destination=CIPHER.seal(phone, context=self.tenant),
            time_zone="Asia/Shanghai", locale="en", template_id="reminder.sms", currency="CNY",
            overdue_minor=123_456, due_date=date(2026, 1, 15), requested_at=datetime.now(UTC)))

    async def send(self, dispatcher: Dispatcher, *approvals: ContactApprovedV1) -> None:
        async with committed(self.runtime.sessions, source=self.runtime.settings.spec.source) as uow:
            await service.record_approved(uow, approved=list(approvals))
        while await dispatcher.dispatch_once() > 0:
            pass

    async def attempts(self) -> dict[str, ContactAttempt]:
        async with self.runtime.sessions() as session:
            rows = (await session.execute(select(ContactAttempt).where(ContactAttempt.tenant == self.tenant))).scalars()
            return {a.contact_id: a for a in rows}

    async def statuses(self) -> dict[str, str]:
        return {cid: a.status for cid, a in (await self.attempts()).items()}

    async def outcomes(self) -> list[tuple[str, str]]:
        async with self.runtime.sessions() as session:
            rows = (await session.execute(select(OutboxEntry).where(
                OutboxEntry.key.startswith(f"{self.tenant}:".encode())))).scalars()  # type: ignore[attr-defined]
            found = [ContactOutcomeV1.model_validate(CloudEvent.from_bytes(r.value).data) for r in rows]
        return sorted((o.contact_id, o.outcome) for o in found)

    async def age(self, contact_ids: list[str], sent_ago_s: float) -> None:
        async with self.runtime.sessions() as session:
            await session.execute(AGE, {"ago": sent_ago_s, "ids": contact_ids})
            await session.commit()

    async def sandbox_status(self, provider_ref: str, account: str = "sandbox") -> str:
        r = await self.client.get(f"{self.sandbox_url}/v1/messages/{provider_ref}", headers={"X-Account": account})
        return str(r.json()["status"]) if r.status_code == 200 else str(r.status_code)


@pytest.fixture
async def live(infra) -> AsyncIterator[Live]:  # type: ignore[no-untyped-def]
    sms_port, channels_port = free_port(), free_port()
    tenant, api_key = f"t-{uuid.uuid4().hex[:8]}", f"key-{uuid.uuid4().hex}"
    settings = Settings(database_url=infra.database_url, kafka_bootstrap_servers=infra.kafka, app_env="test",
                        api_keys={api_key: tenant}, sms_base_url=f"http://127.0.0.1:{sms_port}",
                        public_base_url=f"http://127.0.0.1:{channels_port}", sms_webhook_secrets=ACCOUNTS,
                        reconcile_after_s=300, reconcile_give_up_s=3600)
    app = channels_app(settings)
    runtime = Runtime(settings)  # never started: no consumer, relay or workers; the test drives them
    app.state.runtime = runtime
    sandbox = sandbox_app(receipt_url=None, store_path=None, receipt_delay_s=0.05, receipt_backoff_s=0.05,
                          accounts=ACCOUNTS)
    try:  # the channels app is served without its lifespan: the runtime above stands in for it
        async with (served(sandbox, sms_port), served(app, channels_port, lifespan="off"),
                    httpx.AsyncClient(timeout=10) as client):
            yield Live(tenant, api_key, runtime, client, f"http://127.0.0.1:{channels_port}",
                       f"http://127.0.0.1:{sms_port}")
    finally:
        try:
            async with runtime.sessions() as session:
                await session.execute(PARK, {"tenant": tenant})
                await session.commit()
        finally:
            await runtime.engine.dispose()
            await runtime.producer.stop()


async def test_the_sandbox_signs_receipts_and_channels_records_them(live: Live) -> None:
    ok, fails, silent, other = (live.approval(n, phone) for n, phone in
                                enumerate((OK, FAILS, SILENT, "+8613812340001"), start=1))
    applied_before = metric("channels_receipts_total", source="webhook", result="applied")
    refused_before = sum(metric("channels_webhooks_refused_total", reason=r)
                         for r in ("missing", "malformed", "stale", "signature"))
    await live.send(live.dispatcher(), ok, fails, silent)
    await live.send(live.dispatcher(account="acct-b"), other)  # another provider account, its own secret

    ids = [a.request.contact_id for a in (ok, fails, silent, other)]

    async def settled() -> bool:
        s = await live.statuses()
        return (s[ids[0]], s[ids[1]], s[ids[3]]) == ("delivered", "failed", "delivered")

    await eventually(settled)
    rows = await live.attempts()
    assert rows[ids[2]].status == "sent"  # the carrier never reported: no receipt
    assert {cid: a.provider_account for cid, a in rows.items()} == {
        ids[0]: "sandbox", ids[1]: "sandbox", ids[2]: "sandbox", ids[3]: "acct-b"}
    assert await live.sandbox_status(rows[ids[3]].provider_ref or "", "acct-b") == "delivered"
    assert await live.sandbox_status(rows[ids[3]].provider_ref or "", "sandbox") == "404"  # not that account's
    assert ("+" not in (rows[ids[1]].detail or "")) and rows[ids[1]].detail == "provider reported the SMS undelivered"
    assert [o for o in await live.outcomes() if o[1] != "sent"] == [(ids[1], "failed")]
    assert metric("channels_receipts_total", source="webhook", result="applied") - applied_before >= 3
    assert sum(metric("channels_webhooks_refused_total", reason=r)
               for r in ("missing", "malformed", "stale", "signature")) == refused_before


async def test_receipts_lost_while_channels_was_down_are_reconciled(live: Live) -> None:
    ok, fails, silent = (live.approval(n, phone) for n, phone in enumerate((OK, FAILS, SILENT), start=1))
    ids = [a.request.contact_id for a in (ok, fails, silent)]
    await live.send(live.dispatcher(callback=False), ok, fails, silent)  # the receipts go nowhere
    rows = await live.attempts()

    async def provider_settled() -> bool:
        return [await live.sandbox_status(rows[cid].provider_ref or "") for cid in ids] == [
            "delivered", "undelivered", "sent"]

    await eventually(provider_settled)
    assert await live.statuses() == dict.fromkeys(ids, "sent")
    reconciler = live.reconciler()
    await reconciler.reconcile_once()
    assert await live.statuses() == dict.fromkeys(ids, "sent")  # sent moments ago: not polled yet

    await live.age(ids, sent_ago_s=600)
    gave_up_before = metric("channels_reconcile_total", result="gave_up")
    await reconciler.reconcile_once()
    assert await live.statuses() == {ids[0]: "delivered", ids[1]: "failed", ids[2]: "sent"}
    assert [o for o in await live.outcomes() if o[1] != "sent"] == [(ids[1], "failed")]

    await live.age([ids[2]], sent_ago_s=7200)  # past CHANNELS_RECONCILE_GIVE_UP_S, still no final status
    await reconciler.reconcile_once()
    rows = await live.attempts()
    assert rows[ids[2]].status == "unknown"
    assert "no final status from the SMS provider within 3600 s; last: sent" in (rows[ids[2]].detail or "")
    assert [o for o in await live.outcomes() if o[1] != "sent"] == sorted([(ids[1], "failed"), (ids[2], "unknown")])
    assert metric("channels_reconcile_total", result="gave_up") - gave_up_before >= 1

    # visible over REST, tenant-scoped
    listed = await live.client.get(f"{live.channels_url}/v1/contacts", params={"status": "unknown"},
                                   headers={"Authorization": f"Bearer {live.api_key}"})
    assert listed.status_code == 200, listed.text
    assert [(c["contact_id"], c["status"], c["account_ref"]) for c in listed.json()] == [(ids[2], "unknown", "0003")]

    # another pass (or a replica's) changes nothing
    await live.age(ids, sent_ago_s=7200)
    await reconciler.reconcile_once()
    assert await live.statuses() == {ids[0]: "delivered", ids[1]: "failed", ids[2]: "unknown"}
    assert len([o for o in await live.outcomes() if o[1] != "sent"]) == 2


async def test_an_unreachable_provider_leaves_attempts_for_the_next_pass(live: Live) -> None:
    ok = live.approval(1, OK)
    await live.send(live.dispatcher(callback=False), ok)
    cid = ok.request.contact_id
    await live.age([cid], sent_ago_s=600)
    s = live.runtime.settings
    down = Reconciler(live.runtime, SmsProvider(live.client, "http://127.0.0.1:9", s.sms_sender, timeout_s=1))
    errors_before = metric("channels_reconcile_total", result="error")
    await down.reconcile_once()
    row = (await live.attempts())[cid]
    assert row.status == "sent"
    assert metric("channels_reconcile_total", result="error") - errors_before >= 1
    assert row.next_try_at > datetime.now(UTC)  # polled again after CHANNELS_RECONCILE_AFTER_S, not at once

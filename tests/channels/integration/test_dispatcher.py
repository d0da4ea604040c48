"""The channels dispatcher end to end: real PostgreSQL, the project's SMS sandbox (uvicorn on a free port)
and SMTP sink, the real adapters. Each test works on its own tenant and looks only at its own rows."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import select, text

from devstack.embedded import free_port
from devstack.sms_sandbox import create_app
from devstack.smtp_sink import SmtpSink, read_mailbox
from services.channels import service
from services.channels.adapters.mail import MailProvider
from services.channels.adapters.sms import SmsProvider
from services.channels.db.models import ContactAttempt
from services.channels.settings import Settings
from services.channels.workers.dispatcher import Dispatcher
from shared.contracts import CloudEvent, topics
from shared.contracts.events import Channel, ContactApprovedV1, ContactOutcomeV1, ContactRequestV1
from shared.crypto import PiiCipher
from shared.messaging import OutboxEntry
from shared.runtime import Runtime
from shared.settings import DEV_PII_KEYS
from tests.helpers import committed

pytestmark = pytest.mark.integration
CIPHER = PiiCipher(DEV_PII_KEYS, "dev1")
PARK = text("UPDATE contact_attempts SET status = 'failed', detail = 'left by a test' "
            "WHERE tenant = :tenant AND status IN ('sending', 'dispatching', 'sent')")


@dataclass
class Rig:
    tenant: str
    runtime: Runtime[Settings]
    dispatcher: Dispatcher
    sandbox: httpx.AsyncClient
    maildir: Path

    async def sms(self, contact_id: str) -> list[dict[str, Any]]:
        """What the SMS sandbox stored for this contact."""
        response = await self.sandbox.get("/messages", params={"client_ref": contact_id, "limit": 1000})
        return list(response.json()["messages"])

    async def sms_count(self) -> int:
        return int((await self.sandbox.get("/messages/count")).json()["count"])

    def mails(self) -> list[EmailMessage]:
        return read_mailbox(self.maildir)

    async def attempts(self) -> dict[str, ContactAttempt]:
        async with self.runtime.sessions() as session:
            rows = (await session.execute(select(ContactAttempt).where(ContactAttempt.tenant == self.tenant))).scalars()
            return {a.contact_id: a for a in rows}

    async def outcomes(self) -> dict[str, list[ContactOutcomeV1]]:
        """The ContactOutcome events still in the outbox for this tenant (no relay runs here)."""
        async with self.runtime.sessions() as session:
            rows = (await session.execute(select(OutboxEntry).where(
                OutboxEntry.key.startswith(f"{self.tenant}:".encode())))).scalars()  # type: ignore[attr-defined]
            found: dict[str, list[ContactOutcomeV1]] = {}
            for row in rows:
                assert row.topic == topics.CONTACT_OUTCOME.name
                payload = ContactOutcomeV1.model_validate(CloudEvent.from_bytes(row.value).data)
                found.setdefault(payload.contact_id, []).append(payload)
            return found

    async def approve(self, *approvals: ContactApprovedV1) -> None:
        async with committed(self.runtime.sessions, source=self.runtime.settings.spec.source) as uow:
            await service.record_approved(uow, approved=list(approvals))

    async def drain(self) -> list[int]:
        """Dispatch until nothing is left to claim, as the worker's loop does; the batch sizes."""
        handled = [await self.dispatcher.dispatch_once()]
        while handled[-1] > 0:
            handled.append(await self.dispatcher.dispatch_once())
        return handled

    def approval(self, channel: Channel, n: int, destination: str, *, locale: str = "zh-CN") -> ContactApprovedV1:
        email = channel is Channel.EMAIL
        return ContactApprovedV1(decision_id=str(uuid.uuid4()), request=ContactRequestV1(
            tenant=self.tenant, contact_id=f"{self.tenant}-{channel.value}-{n}", attempt=1,
            account_id=f"ACC-{n}{n}{n}{n}-{n}", account_ref=f"{n}{n}{n}{n}"[-4:], customer_id=f"C{n}", channel=channel,
            treatment_step="d5",
            segment="standard", days_past_due=5, destination=CIPHER.seal(destination, context=self.tenant),
            time_zone="Asia/Shanghai", locale=locale, template_id="reminder.email" if email else "reminder.sms",
            currency="CNY", overdue_minor=123_456, due_date=date(2026, 1, 15), requested_at=datetime.now(UTC)))


@pytest.fixture
async def rig(infra, tmp_path: Path) -> AsyncIterator[Rig]:  # type: ignore[no-untyped-def]
    sms_port, smtp_port = free_port(), free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(receipt_url=None, store_path=None), host="127.0.0.1",
                                           port=sms_port, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve())
    sink = SmtpSink("127.0.0.1", smtp_port, tmp_path / "mail")
    sink.start()
    settings = Settings(database_url=infra.database_url, kafka_bootstrap_servers=infra.kafka,
                        sms_base_url=f"http://127.0.0.1:{sms_port}", smtp_port=smtp_port, app_env="test")
    runtime = Runtime(settings)  # never started: no relay, no consumer; the test drives the dispatcher
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    try:
        for _ in range(500):
            if server.started or serving.done():
                break
            await asyncio.sleep(0.01)
        assert server.started, "the SMS sandbox did not start"
        async with httpx.AsyncClient() as client, httpx.AsyncClient(base_url=settings.sms_base_url) as sandbox:
            sms = SmsProvider(client, settings.sms_base_url, settings.sms_sender, timeout_s=settings.sms_timeout_s)
            mail = MailProvider(settings.smtp_host, settings.smtp_port, settings.mail_from, tls=settings.smtp_tls,
                                timeout_s=settings.smtp_timeout_s)
            yield Rig(tenant, runtime, Dispatcher(runtime, sms, mail), sandbox, tmp_path / "mail")
    finally:
        try:
            async with runtime.sessions() as session:
                await session.execute(PARK, {"tenant": tenant})
                await session.commit()
        finally:
            await runtime.engine.dispose()
            await runtime.producer.stop()  # never started; closing it keeps its finaliser quiet
            sink.stop()
            server.should_exit = True
            await serving


async def test_one_pass_sends_sms_and_email_records_them_and_never_sends_twice(rig: Rig) -> None:
    zh = rig.approval(Channel.SMS, 1, "+8613812345678")
    en = rig.approval(Channel.SMS, 2, "+447700900123", locale="en")
    mail = rig.approval(Channel.EMAIL, 3, "kunde@example.com")
    bad = rig.approval(Channel.SMS, 4, "13812345678")  # no +country code: not E.164
    call = rig.approval(Channel.CALL, 5, "+8613812345678")
    await rig.approve(zh, en, mail, bad, call)
    zh_id, en_id, mail_id, bad_id, call_id = (a.request.contact_id for a in (zh, en, mail, bad, call))

    handled = await rig.drain()
    assert handled[0] >= 4 and handled[-1] == 0

    [zh_sms] = await rig.sms(zh_id)
    assert (zh_sms["to"], zh_sms["sender"]) == ("+8613812345678", rig.runtime.settings.sms_sender)
    assert "尾号1111" in zh_sms["body"] and "1,234.56" in zh_sms["body"] and "回复TD退订" in zh_sms["body"]
    assert "ACC-" not in zh_sms["body"] and zh_sms["account"] == rig.runtime.settings.sms_account
    [en_sms] = await rig.sms(en_id)
    assert en_sms["to"] == "+447700900123" and "ending 2222" in en_sms["body"] and "Reply STOP" in en_sms["body"]
    assert await rig.sms(bad_id) == []
    assert await rig.sms(call_id) == []
    [email] = [m for m in rig.mails() if m["X-Contact-Id"] == mail_id]
    assert (email["To"], email["From"]) == ("kunde@example.com", rig.runtime.settings.mail_from)
    assert "3333" in email["Subject"]
    assert "1,234.56" in email.get_body().get_content()  # type: ignore[union-attr]

    rows = await rig.attempts()
    assert {cid: (a.status, a.tries) for cid, a in rows.items()} == {
        zh_id: ("sent", 1), en_id: ("sent", 1), mail_id: ("sent", 1), bad_id: ("failed", 1),
        call_id: ("task_created", 0)}
    assert (rows[zh_id].provider_ref, rows[en_id].provider_ref) == (zh_sms["message_id"], en_sms["message_id"])
    assert (rows[zh_id].provider_account, rows[mail_id].provider_account) == ("sandbox", None)
    message_id = str(email["Message-ID"]).strip()  # a long header is folded onto its own line
    assert rows[mail_id].provider_ref == message_id
    bad_detail = rows[bad_id].detail or ""
    assert bad_detail.startswith("not sendable: ValueError: the phone number is not in E.164 form")
    assert "13812345678" not in bad_detail

    told = await rig.outcomes()
    assert {cid: [(o.outcome, o.provider_ref) for o in found] for cid, found in told.items()} == {
        zh_id: [("sent", zh_sms["message_id"])], en_id: [("sent", en_sms["message_id"])],
        mail_id: [("sent", message_id)], bad_id: [("failed", None)], call_id: [("task_created", None)]}
    assert told[bad_id][0].detail == rows[bad_id].detail

    sms_before, mails_before = await rig.sms_count(), len(rig.mails())
    assert await rig.dispatcher.dispatch_once() == 0
    assert await rig.dispatcher.recover_stale() == 0
    assert (await rig.sms_count(), len(rig.mails())) == (sms_before, mails_before)
    assert {cid: (a.status, a.tries) for cid, a in (await rig.attempts()).items()} == {
        cid: (a.status, a.tries) for cid, a in rows.items()}
    assert {cid: len(found) for cid, found in (await rig.outcomes()).items()} == dict.fromkeys(told, 1)


async def test_an_sms_interrupted_after_the_provider_took_it_is_resent_and_stored_once(rig: Rig) -> None:
    sms = rig.approval(Channel.SMS, 1, "+8613812345678")
    contact_id = sms.request.contact_id
    await rig.approve(sms)
    # a dispatcher claims it and calls the provider, then dies before recording the answer
    async with committed(rig.runtime.sessions) as uow:
        claimed = [a for a in await service.claim_for_dispatch(uow, limit=10_000) if a.contact_id == contact_id]
    ready, unusable = service.prepare_messages(claimed, rig.runtime.cipher)
    assert unusable == []
    [first] = await rig.dispatcher.sms.send(ready)  # type: ignore[arg-type]
    assert first.ok
    async with rig.runtime.sessions() as session:  # ... long enough ago for its lease to be over
        await session.execute(text("UPDATE contact_attempts SET dispatched_at = now() - interval '1 hour' "
                                   "WHERE contact_id = :id"), {"id": contact_id})
        await session.commit()

    assert await rig.dispatcher.recover_stale() >= 1
    assert (await rig.attempts())[contact_id].status == "sending"
    await rig.drain()

    [stored] = await rig.sms(contact_id)  # the provider deduplicated the resend by its idempotency key
    assert stored["message_id"] == first.provider_ref
    row = (await rig.attempts())[contact_id]
    assert (row.status, row.tries, row.provider_ref) == ("sent", 2, first.provider_ref)
    assert [(o.outcome, o.provider_ref) for o in (await rig.outcomes())[contact_id]] == [("sent", first.provider_ref)]


@pytest.mark.parametrize("number", ["+86138123456\uff17\uff18", "+8613812345678\n"],
                         ids=["fullwidth-digits", "trailing-newline"])
async def test_a_malformed_number_fails_alone_without_failing_the_rest_of_the_batch(rig: Rig, number: str) -> None:
    good, odd = rig.approval(Channel.SMS, 1, "+8613812345678"), rig.approval(Channel.SMS, 2, number)
    await rig.approve(good, odd)
    await rig.drain()

    rows = await rig.attempts()
    assert rows[odd.request.contact_id].status == "failed"
    assert rows[good.request.contact_id].status == "sent", rows[good.request.contact_id].detail
    assert len(await rig.sms(good.request.contact_id)) == 1


async def test_the_dispatcher_is_woken_by_consumer_batches_not_by_its_own_commits(infra) -> None:  # type: ignore[no-untyped-def]
    """Its own claims commit too: if those woke it, an idle dispatcher would spin (a CPU-bound loop)."""
    import httpx

    from services.channels.adapters.mail import MailProvider
    from services.channels.adapters.sms import SmsProvider
    from services.channels.settings import Settings
    from services.channels.workers.dispatcher import Dispatcher
    from shared.runtime import Runtime

    runtime = Runtime(Settings(database_url=infra.database_url, kafka_bootstrap_servers=infra.kafka, app_env="test"))
    try:
        async with httpx.AsyncClient() as client:
            dispatcher = Dispatcher(runtime, SmsProvider(client, "http://127.0.0.1:9", "T"),
                                    MailProvider("127.0.0.1", 9, "x@example.com"))
            runtime.consumer_units.after_commit.append(dispatcher.wake)
            await dispatcher.recover_stale()
            await dispatcher.dispatch_once()
            assert not dispatcher._wakeup.is_set()  # its own (empty) claim and recovery commits
            async with runtime.consumer_units() as uow:  # a consumer batch commits
                await uow.commit()
            assert dispatcher._wakeup.is_set()
    finally:
        await runtime.producer.stop()
        await runtime.engine.dispose()


async def test_a_dispatch_batch_above_the_providers_limit_is_sent_in_chunks(rig: Rig) -> None:
    """CHANNELS_DISPATCH_BATCH may exceed the 1,000 messages the provider takes per request."""
    rig.dispatcher.settings = rig.runtime.settings.model_copy(update={"dispatch_batch": 2500})
    approvals = [rig.approval(Channel.SMS, n, f"+86138{n:08d}") for n in range(1, 1201)]
    await rig.approve(*approvals)
    before = await rig.sms_count()

    handled = await rig.drain()

    assert handled[0] >= 1200  # one pass, one claim: more than one provider request
    assert await rig.sms_count() - before == 1200
    rows = await rig.attempts()
    assert {a.status for a in rows.values()} == {"sent"}
    assert len({a.provider_ref for a in rows.values()}) == 1200


async def test_every_email_carries_its_signed_unsubscribe_link_and_the_one_click_headers(rig: Rig, infra) -> None:  # type: ignore[no-untyped-def]
    """The e-mail's link (body and List-Unsubscribe, RFC 8058) names the tenant, customer, contact and the
    address's keyed hash, never the address; POSTing it to the channels app opts that address out for the tenant."""
    from urllib.parse import urlsplit

    from services.channels.domain.unsubscribe import read
    from tests.api.support import Tenant, open_service

    zh = rig.approval(Channel.EMAIL, 3, "Kunde@Example.com")
    en = rig.approval(Channel.EMAIL, 4, "customer@example.com", locale="en")
    await rig.approve(zh, en)
    await rig.drain()
    settings = rig.runtime.settings
    for approved, locale in ((zh, "zh-CN"), (en, "en")):
        [mail] = [m for m in rig.mails() if m["X-Contact-Id"] == approved.request.contact_id]
        header = str(mail["List-Unsubscribe"])
        assert header.startswith(f"<{settings.unsubscribe_base_url}/v1/unsubscribe/") and header.endswith(">")
        assert str(mail["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
        url = header[1:-1]
        assert mail.get_body().get_content().rstrip().endswith(url)  # type: ignore[union-attr]
        assert "example.com" not in url.lower().replace(urlsplit(url).netloc, "")
        claims = read(url.rsplit("/", 1)[1], keys=settings.unsubscribe_signing_keys, now=time.time())
        assert (claims.tenant, claims.customer_id, claims.contact_id, claims.locale) == (
            rig.tenant, approved.request.customer_id, approved.request.contact_id, locale)
        assert claims.destination_key == rig.runtime.identity.contact_point_key(
            channel="email", destination=str(mail["To"]))
        ttl = settings.unsubscribe_ttl_days * 86_400
        assert time.time() + ttl - 120 < claims.expires_at <= time.time() + ttl

    async with open_service("channels", infra.database_url, infra.kafka, [Tenant.new()]) as api:
        [mail] = [m for m in rig.mails() if m["X-Contact-Id"] == zh.request.contact_id]
        path = urlsplit(str(mail["List-Unsubscribe"])[1:-1]).path
        response = await api.client.post(path, content=b"List-Unsubscribe=One-Click",
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert response.status_code == 200, response.text
        [row] = [o for o in await api.outbox(rig.tenant) if o.topic == topics.OPT_OUT.name]
        assert row.event.data["destination_key"] == rig.runtime.identity.contact_point_key(
            channel="email", destination="kunde@example.com")
        assert (row.event.data["channel"], row.event.data["customer_id"]) == ("email", zh.request.customer_id)


async def test_with_portal_base_url_each_sms_and_email_carries_its_own_portal_link(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """PORTAL_BASE_URL set: the dispatcher mints each message's portal link for its tenant and account with the
    shared portal key (plans opens it); the link is in the text sent, never in a log or a stored row."""
    import logging
    import re

    from services.channels.workers.dispatcher import portal_links
    from shared import portal_links as links

    settings = rig.runtime.settings.model_copy(update={"portal_base_url": "https://portal.example.com/"})
    rig.dispatcher.portal = portal_links(settings)
    caplog.set_level(logging.DEBUG)
    sms, mail = rig.approval(Channel.SMS, 6, "+8613812345678"), rig.approval(Channel.EMAIL, 7, "k@example.com",
                                                                              locale="en")
    await rig.approve(sms, mail)
    await rig.drain()
    [sent] = await rig.sms(sms.request.contact_id)
    [email] = [m for m in rig.mails() if m["X-Contact-Id"] == mail.request.contact_id]
    content = email.get_body().get_content()  # type: ignore[union-attr]
    tokens = []
    for account_id, body in ((sms.request.account_id, sent["body"]), (mail.request.account_id, content)):
        [token] = re.findall(r"https://portal\.example\.com/portal/l/([A-Za-z0-9_-]+)", body)
        claims = links.verify(token, settings.portal_key, now=time.time())
        assert (claims.tenant, claims.account_id) == (rig.tenant, account_id)
        tokens.append(token)
    assert "在线协商：https://portal.example.com/portal/l/" in sent["body"]
    assert not [t for t in tokens if t in caplog.text]
    rows = await rig.attempts()
    assert {rows[a.request.contact_id].status for a in (sms, mail)} == {"sent"}
    assert not [t for t in tokens for r in rows.values() if t in (r.detail or "")]

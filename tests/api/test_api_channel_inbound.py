"""Customers' replies through the channels app on the real database: POST /v1/webhooks/sms/inbound (signed
like receipts). An opt-out reply suppresses the number for every tenant that texted it and is confirmed
once; nothing of the number or the text is stored; a repeat changes nothing."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from services.channels import service
from services.channels.db.models import ContactAttempt, InboundMessage
from services.channels.domain.inbound import CONFIRMATION_TEMPLATE
from services.channels.domain.signatures import signature
from services.channels.settings import DEV_SMS_ACCOUNT, DEV_SMS_WEBHOOK_SECRET
from shared.contracts import topics
from shared.contracts.events import ContactApprovedV1, ContactOptOutV1
from shared.identity import contact_point_key_for
from tests.api.support import ServiceApi, Tenant, assert_problem
from tests.api.test_api_channels import approval

pytestmark = pytest.mark.integration
INBOUND = "/v1/webhooks/sms/inbound"


async def reply(api: ServiceApi, sender: str, body: str, *, message_id: str | None = None,
                secret: str = DEV_SMS_WEBHOOK_SECRET) -> Any:
    content = json.dumps({"messages": [{"message_id": message_id or f"mo_{uuid.uuid4().hex}", "from": sender,
                                        "body": body, "received_at": datetime.now(UTC).isoformat()}]}).encode()
    timestamp = str(int(time.time()))
    return await api.client.post(INBOUND, content=content, headers={
        "X-Account": DEV_SMS_ACCOUNT, "X-Timestamp": timestamp, "X-Signature": signature(secret, timestamp, content),
        "Content-Type": "application/json"})


async def texted(api: ServiceApi, tenant: Tenant, account_id: str, phone: str) -> None:
    """The tenant's SMS to ``phone`` was approved and recorded (with its contact-point key, as the consumer does)."""
    a = approval(tenant, account_id, customer_id=f"C-{account_id}")
    a = ContactApprovedV1(decision_id=a.decision_id, request=a.request.model_copy(
        update={"destination": api.runtime.cipher.seal(phone, context=tenant.id)}))
    async with api.runtime.units() as uow:
        await service.record_approved(uow, approved=[a], destination_key_of=lambda t, ch, sealed: contact_point_key_for(
            api.runtime.identity, api.runtime.cipher, tenant=t, channel=ch, sealed=sealed))
        await uow.commit()


async def test_an_opt_out_reply_suppresses_the_number_for_every_tenant_that_texted_it_once(
        channels: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    phone = f"+86139{uuid.uuid4().int % 10**8:08d}"
    await texted(channels, tenant_a, f"A-{uuid.uuid4().hex[:6]}", phone)
    await texted(channels, tenant_b, f"B-{uuid.uuid4().hex[:6]}", phone)
    message_id = f"mo_{uuid.uuid4().hex}"
    written = f"{phone[:3]} {phone[3:6]}-{phone[6:10]}-{phone[10:]}"  # the provider's own formatting
    response = await reply(channels, written, "回复TD", message_id=message_id)
    assert response.status_code == 200, response.text
    assert response.json() == {"opted_out": 1, "other": 0, "repeated": 0, "unknown": 0}

    for tenant in (tenant_a, tenant_b):
        events = [o for o in await channels.outbox(tenant) if o.topic == topics.OPT_OUT.name]
        [opt_out] = [ContactOptOutV1.model_validate(o.event.data) for o in events]
        assert (opt_out.keyword, opt_out.message_id, opt_out.source) == ("TD", message_id, "sms-reply")
        assert opt_out.destination_key == channels.runtime.identity.contact_point_key(channel="sms", destination=phone)
        assert phone not in events[0].value.decode() and phone[3:] not in events[0].value.decode()
        [confirmation] = await channels.all(select(ContactAttempt).where(
            ContactAttempt.tenant == tenant.id, ContactAttempt.template_id == CONFIRMATION_TEMPLATE))
        assert confirmation.status == "sending"
        assert channels.runtime.cipher.open(confirmation.destination_sealed or "", context=tenant.id) == written
    [stored] = await channels.all(select(InboundMessage).where(InboundMessage.message_id == message_id))
    assert (stored.keyword, stored.tenants) == ("TD", 2)
    assert phone not in repr(stored.model_dump())

    # the provider delivers it again: nothing new
    again = await reply(channels, written, "回复TD", message_id=message_id)
    assert again.json() == {"opted_out": 0, "other": 0, "repeated": 1, "unknown": 0}
    assert len([o for o in await channels.outbox(tenant_a) if o.topic == topics.OPT_OUT.name]) == 1


async def test_other_replies_and_strangers_change_nothing(channels: ServiceApi, tenant_a: Tenant) -> None:
    phone = f"+86139{uuid.uuid4().int % 10**8:08d}"
    await texted(channels, tenant_a, f"A-{uuid.uuid4().hex[:6]}", phone)
    assert (await reply(channels, phone, "我明天还款")).json() == {"opted_out": 0, "other": 1, "repeated": 0,
                                                              "unknown": 0}
    stranger = f"+86137{uuid.uuid4().int % 10**8:08d}"
    assert (await reply(channels, stranger, "STOP")).json() == {"opted_out": 0, "other": 0, "repeated": 0,
                                                               "unknown": 1}
    assert [o for o in await channels.outbox(tenant_a) if o.topic == topics.OPT_OUT.name] == []


async def test_unsigned_or_malformed_replies_are_refused_and_change_nothing(
        channels: ServiceApi, tenant_a: Tenant) -> None:
    phone = f"+86139{uuid.uuid4().int % 10**8:08d}"
    await texted(channels, tenant_a, f"A-{uuid.uuid4().hex[:6]}", phone)
    assert_problem(await reply(channels, phone, "TD", secret=uuid.uuid4().hex), 401)
    assert_problem(await channels.client.post(INBOUND, json={"messages": [{"from": phone, "body": "TD"}]}), 401)
    content = b'{"messages": [{"from": "x"}]}'
    timestamp = str(int(time.time()))
    assert_problem(await channels.client.post(INBOUND, content=content, headers={
        "X-Account": DEV_SMS_ACCOUNT, "X-Timestamp": timestamp,
        "X-Signature": signature(DEV_SMS_WEBHOOK_SECRET, timestamp, content), "Content-Type": "application/json"}),
        422)
    assert [o for o in await channels.outbox(tenant_a) if o.topic == topics.OPT_OUT.name] == []

"""Channels' consumer: approved contacts become attempts; calls and visits become agent tasks."""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.channels.consumers.dispatch import Dispatcher, outcome_event
from services.channels.db.models import ContactAttempt
from shared.contracts import topics
from shared.contracts.events import ContactApprovedV1
from shared.db import table_of
from shared.kafka.consumer import Delivery, Handler
from shared.messaging import add_to_outbox
from shared.service import Runtime

QUEUED_CHANNELS = ("sms", "email")


async def on_contact_approved(session: AsyncSession, deliveries: list[Delivery]) -> None:
    """Record each approved contact once ('sending', before any provider call)."""
    rows = []
    for d in deliveries:
        approved: ContactApprovedV1 = d.payload
        r = approved.request
        rows.append({
            "contact_id": r.contact_id, "tenant": r.tenant, "account_id": r.account_id,
            "customer_id": r.customer_id, "channel": r.channel.value, "template_id": r.template_id,
            "locale": r.locale, "days_past_due": r.days_past_due, "overdue_minor": r.overdue_minor,
            "currency": r.currency, "due_date": r.due_date, "destination_sealed": r.destination,
            "status": "sending" if r.channel.value in QUEUED_CHANNELS else "task_created", "tries": 0,
        })
    table = table_of(ContactAttempt)
    created = (await session.execute(
        insert(table).on_conflict_do_nothing().returning(*table.c), rows)).all()  # type: ignore[attr-defined]
    await add_to_outbox(session, [outcome_event(a, "task_created", detail=f"{a.channel} task for an agent")
                                  for a in created if a.status == "task_created"])


def build_handlers(runtime: Runtime) -> dict[str, Handler]:
    return {topics.CONTACT_APPROVED.name: on_contact_approved}


async def dispatch_loop(runtime: Runtime) -> None:
    """Runs the dispatcher for the service's lifetime; woken after every committed batch."""
    import httpx

    from services.channels.domain.providers import MailProvider, SmsProvider

    s = runtime.settings
    async with httpx.AsyncClient() as client:
        dispatcher = Dispatcher(runtime, SmsProvider(client, s.sms_base_url, s.sms_sender),  # type: ignore[attr-defined]
                                MailProvider(s.smtp_host, s.smtp_port, s.mail_from))  # type: ignore[attr-defined]
        runtime.commit_hooks.append(dispatcher.wake)
        await dispatcher.run()

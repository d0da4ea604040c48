"""Dispatch of approved contacts, so that a crash never sends the same contact twice.

1. The consumer inserts the attempt as 'sending' (keyed by contact_id) in its transaction.
2. The dispatcher claims 'sending' rows and marks them 'dispatching' (committed) before any
   provider call, then records the provider's answer and the ContactOutcome in a second one.
3. A row found 'dispatching' after the lease means we crashed mid-call. SMS is re-sent with the
   same idempotency key (the provider dedupes); e-mail has no such key, so it becomes 'unknown'
   and is reported, never re-sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.channels.db.models import ContactAttempt
from services.channels.domain.providers import MailProvider, OutgoingEmail, OutgoingSms, SendResult, SmsProvider
from services.channels.domain.templates import TemplateContext, render
from shared import metrics
from shared.contracts import topics
from shared.contracts.events import ContactOutcomeV1
from shared.db import table_of
from shared.logging import mask_text
from shared.messaging import add_to_outbox, build_event
from shared.service import Runtime

log = logging.getLogger(__name__)
SOURCE = "urn:gentle-collections:channels"
ATTEMPTS: Any = table_of(ContactAttempt)
# one executemany for a whole batch of provider answers
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_RECORD = (
    # only rows still ours: a receipt may already have marked one delivered
    update(ATTEMPTS).where(ATTEMPTS.c.contact_id == bindparam("b_id"), ATTEMPTS.c.status == "dispatching")
    .values(status=bindparam("b_status"), provider_ref=bindparam("b_ref"), detail=bindparam("b_detail"),
            next_try_at=bindparam("b_next"), updated_at=func.now())
)


def outcome_event(a: Any, outcome: str, *, provider_ref: str | None = None,
                  detail: str | None = None) -> tuple[topics.Topic, Any, str]:
    payload = ContactOutcomeV1(
        tenant=a.tenant, contact_id=a.contact_id, account_id=a.account_id, customer_id=a.customer_id,
        channel=a.channel, outcome=outcome, provider_ref=provider_ref, detail=detail, occurred_at=datetime.now(UTC))
    return (topics.CONTACT_OUTCOME, build_event(topics.CONTACT_OUTCOME, payload, tenant=a.tenant,
                                                customer_id=a.customer_id, source=SOURCE, subject=a.contact_id),
            a.customer_id)


class Dispatcher:
    def __init__(self, runtime: Runtime, sms: SmsProvider, mail: MailProvider) -> None:
        self.runtime = runtime
        self.sms, self.mail = sms, mail
        self.settings: Any = runtime.settings
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        while not self.runtime.stopping.is_set():
            self._wakeup.clear()  # before the pass, so a wake during it is not lost
            try:
                await self.recover_stale()
                while await self.dispatch_once() > 0:
                    pass
            except Exception:
                log.exception("dispatch pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), 0.5)

    async def _claim(self, session: AsyncSession) -> list[Any]:
        """Mark a batch 'dispatching' (tries + 1) and return it, as the provider will see it."""
        claimable = (
            select(ATTEMPTS.c.contact_id)
            .where(ATTEMPTS.c.status == "sending", ATTEMPTS.c.next_try_at <= func.now())
            .order_by(ATTEMPTS.c.created_at).limit(self.settings.dispatch_batch)
            .with_for_update(skip_locked=True)
            .scalar_subquery())
        return list((await session.execute(
            update(ATTEMPTS).where(ATTEMPTS.c.contact_id.in_(claimable))
            .values(status="dispatching", dispatched_at=func.now(), tries=ATTEMPTS.c.tries + 1, updated_at=func.now())
            .returning(*ATTEMPTS.c))).all())

    async def dispatch_once(self) -> int:
        """Claim, send and record one batch. Returns how many attempts it handled."""
        async with self.runtime.sessions() as session, session.begin():
            claimed = await self._claim(session)
        if not claimed:
            return 0
        sms: list[OutgoingSms] = []
        mail: list[OutgoingEmail] = []
        unusable: list[SendResult] = []
        for a in claimed:
            try:
                message = self._prepare(a)
            except Exception as exc:  # one bad row must not stop the batch; it fails on its own
                unusable.append(SendResult(a.contact_id, False, error=f"not sendable: {type(exc).__name__}: "
                                                                      f"{mask_text(str(exc))[:300]}"))
                continue
            (sms if isinstance(message, OutgoingSms) else mail).append(message)  # type: ignore[arg-type]
        sms_results, mail_results = await asyncio.gather(
            self.sms.send(sms) if sms else _none(), self.mail.send(mail) if mail else _none())
        await self._record(claimed, [*unusable, *sms_results, *mail_results])
        return len(claimed)

    def _prepare(self, a: Any) -> OutgoingSms | OutgoingEmail:
        """Open the destination and render the template; raises for a row that can never be sent."""
        to = self.runtime.cipher.open(a.destination_sealed or "", context=a.tenant)
        text = render(a.template_id, TemplateContext(a.account_id, a.days_past_due, a.overdue_minor, a.currency,
                                                     a.due_date, a.locale))
        if a.channel == "sms":
            if not E164.match(to):
                raise ValueError("the phone number is not in E.164 form")
            return OutgoingSms(a.contact_id, to, text.body)
        return OutgoingEmail(a.contact_id, to, text.subject, text.body)

    async def _record(self, claimed: list[Any], results: list[SendResult]) -> None:
        by_id = {a.contact_id: a for a in claimed}
        updates: list[dict[str, Any]] = []
        outgoing = []
        now = datetime.now(UTC)
        for r in results:
            a = by_id[r.contact_id]
            error = mask_text(r.error) if r.error else None  # provider errors can quote the address
            if r.ok:
                updates.append({"b_id": a.contact_id, "b_status": "sent", "b_ref": r.provider_ref,
                                "b_detail": None, "b_next": now})
                outgoing.append(outcome_event(a, "sent", provider_ref=r.provider_ref))
                metrics.CONTACTS_SENT.labels(a.channel, "sent").inc()
            elif r.retryable and a.tries < self.settings.max_send_tries:
                updates.append({"b_id": a.contact_id, "b_status": "sending", "b_ref": None, "b_detail": error,
                                "b_next": now + timedelta(seconds=2 ** a.tries)})
            else:
                updates.append({"b_id": a.contact_id, "b_status": "failed", "b_ref": None, "b_detail": error,
                                "b_next": now})
                outgoing.append(outcome_event(a, "failed", detail=error))
                metrics.CONTACTS_SENT.labels(a.channel, "failed").inc()
        async with self.runtime.sessions() as session, session.begin():
            await session.execute(_RECORD, updates)
            await add_to_outbox(session, outgoing)
        self.runtime.relay.wake()

    async def recover_stale(self) -> int:
        """Attempts stuck in 'dispatching' past the lease: the process died during a provider call."""
        cutoff = datetime.now(UTC) - timedelta(seconds=self.settings.dispatch_lease_s)
        async with self.runtime.sessions() as session, session.begin():
            stale = (await session.execute(
                select(ContactAttempt)
                .where(ContactAttempt.status == "dispatching",  # type: ignore[arg-type]
                       ContactAttempt.dispatched_at < cutoff)  # type: ignore[arg-type, operator]
                .with_for_update(skip_locked=True))).scalars().all()
            outgoing = []
            for a in stale:
                if a.channel == "sms" and a.tries < self.settings.max_send_tries:
                    a.status = "sending"  # same contact_id = same idempotency key at the provider
                elif a.channel == "sms":
                    a.status, a.detail = "failed", "interrupted too often during SMS delivery"
                    outgoing.append(outcome_event(a, "failed", detail=a.detail))
                else:
                    a.status, a.detail = "unknown", "interrupted during SMTP delivery; not re-sent"
                    outgoing.append(outcome_event(a, "unknown", detail=a.detail))
            await add_to_outbox(session, outgoing)
        if stale:
            log.warning("recovered interrupted dispatches", extra={"count": len(stale)})
        return len(stale)


async def _none() -> list[SendResult]:
    return []

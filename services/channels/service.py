"""Channels' use cases: record approved contacts, claim and record dispatches, recover interrupted
ones, take delivery receipts, read the contact history.

So that a crash never sends the same contact twice:
1. an approved contact is recorded 'sending' (keyed by contact_id) in the consumer's unit of work;
2. the dispatcher worker claims 'sending' rows and commits them 'dispatching' before any provider
   call, then records the provider's answer and the ContactOutcome in a second unit of work;
3. a row found 'dispatching' after the lease means we crashed mid-call: an SMS is re-sent with the
   same idempotency key (the provider dedupes); e-mail has no such key, so it becomes 'unknown' and
   is reported, never re-sent.
Statuses come from ``domain/states.py``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from services.channels.db import repository as repo
from services.channels.db.models import ContactAttempt
from services.channels.domain.messages import OutgoingEmail, OutgoingSms, SendResult
from services.channels.domain.states import ATTEMPT, AttemptEvent, AttemptStatus, creation_event, retry_delay_s
from services.channels.domain.templates import TemplateContext, render
from shared import metrics
from shared.contracts import topics
from shared.contracts.events import ContactApprovedV1, ContactOutcomeV1
from shared.crypto import PiiCipher
from shared.domain import IllegalTransition
from shared.logging import mask_text
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)
# ASCII digits only and the whole string (no trailing newline): the provider checks as strictly, and
# refuses a whole batch for one bad number.
E164 = re.compile(r"\+[1-9][0-9]{6,14}")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how fast a send the provider never accepted is tried again."""

    max_tries: int = 5
    backoff_base_s: float = 2.0
    backoff_max_s: float = 300.0


@dataclass(frozen=True, slots=True)
class Receipt:
    """A provider's delivery receipt for one of our SMS."""

    contact_id: str
    provider_ref: str
    delivered: bool


def _emit_outcome(uow: UnitOfWork, a: Mapping[str, Any], outcome: str, *, provider_ref: str | None = None,
                  detail: str | None = None) -> None:
    payload = ContactOutcomeV1(
        tenant=a["tenant"], contact_id=a["contact_id"], account_id=a["account_id"], customer_id=a["customer_id"],
        channel=a["channel"], outcome=outcome, provider_ref=provider_ref, detail=detail,
        occurred_at=datetime.now(UTC))
    uow.emit(topics.CONTACT_OUTCOME, payload, subject=a["contact_id"])


async def record_approved(uow: UnitOfWork, *, approved: Sequence[ContactApprovedV1]) -> int:
    """Record each approved contact once ('sending', before any provider call); calls and visits become
    agent tasks at once. Returns how many were new."""
    rows = []
    for a in approved:
        r = a.request
        rows.append({
            "contact_id": r.contact_id, "tenant": r.tenant, "account_id": r.account_id,
            "customer_id": r.customer_id, "channel": r.channel.value, "template_id": r.template_id,
            "locale": r.locale, "days_past_due": r.days_past_due, "overdue_minor": r.overdue_minor,
            "currency": r.currency, "due_date": r.due_date, "destination_sealed": r.destination,
            "status": ATTEMPT.apply(AttemptStatus.NEW, creation_event(r.channel.value)).value, "tries": 0})
    created = await repo.insert_new(uow.session, rows)
    for a in created:
        if a.status == AttemptStatus.TASK_CREATED:
            _emit_outcome(uow, a._mapping, "task_created", detail=f"{a.channel} task for an agent")
    return len(created)


async def claim_for_dispatch(uow: UnitOfWork, *, limit: int) -> list[Any]:
    """Claim a batch of attempts to send ('dispatching', tries + 1); commit before calling a provider."""
    return await repo.claim(uow.session, status=AttemptStatus.SENDING.value,
                            claimed_status=ATTEMPT.apply(AttemptStatus.SENDING, AttemptEvent.CLAIMED).value,
                            limit=limit)


def prepare_messages(claimed: Sequence[Any], cipher: PiiCipher) -> tuple[list[OutgoingSms | OutgoingEmail],
                                                                       list[SendResult]]:
    """Open each destination and render its template; a row that can never be sent fails on its own."""
    ready: list[OutgoingSms | OutgoingEmail] = []
    unusable: list[SendResult] = []
    for a in claimed:
        try:
            to = cipher.open(a.destination_sealed or "", context=a.tenant)
            text = render(a.template_id, TemplateContext(a.account_id, a.days_past_due, a.overdue_minor, a.currency,
                                                         a.due_date, a.locale))
            if a.channel == "sms":
                if not E164.fullmatch(to):
                    raise ValueError("the phone number is not in E.164 form")
                ready.append(OutgoingSms(a.contact_id, to, text.body))
            else:
                ready.append(OutgoingEmail(a.contact_id, to, text.subject, text.body))
        except Exception as exc:  # one bad row must not stop the batch
            unusable.append(SendResult(a.contact_id, False, error=f"not sendable: {type(exc).__name__}: "
                                                                  f"{mask_text(str(exc))[:300]}"))
    return ready, unusable


async def record_results(uow: UnitOfWork, *, results: Sequence[SendResult], policy: RetryPolicy) -> None:
    """Store the providers' answers and announce the outcomes (sent, or failed for good)."""
    current = {k: dict(v._mapping) for k, v in (await repo.lock(uow.session, (r.contact_id for r in results))).items()}
    now = datetime.now(UTC)
    changes = []
    for r in results:
        a = current.get(r.contact_id)
        if a is None:
            continue
        status = AttemptStatus(a["status"])
        error = mask_text(r.error) if r.error else None  # provider errors can quote the address
        if r.ok:
            if ATTEMPT.allows(status, AttemptEvent.ACCEPTED):
                a.update(status=ATTEMPT.apply(status, AttemptEvent.ACCEPTED).value, provider_ref=r.provider_ref,
                         detail=None, next_try_at=now)
                changes.append(a)
            elif status is not AttemptStatus.DELIVERED:
                continue  # a failed receipt overtook this answer: 'failed' stands
            _emit_outcome(uow, a, "sent", provider_ref=r.provider_ref)
            metrics.CONTACTS_SENT.labels(a["channel"], "sent").inc()
            continue
        event = AttemptEvent.RETRY if r.retryable and a["tries"] < policy.max_tries else AttemptEvent.REFUSED
        try:
            after = ATTEMPT.apply(status, event)
        except IllegalTransition:
            continue
        delay = retry_delay_s(a["tries"], base_s=policy.backoff_base_s, max_s=policy.backoff_max_s)
        a.update(status=after.value, provider_ref=None, detail=error,
                 next_try_at=now + timedelta(seconds=delay) if event is AttemptEvent.RETRY else now)
        changes.append(a)
        if after is AttemptStatus.FAILED:
            _emit_outcome(uow, a, "failed", detail=error)
            metrics.CONTACTS_SENT.labels(a["channel"], "failed").inc()
    await repo.store(uow.session, changes)


async def recover_interrupted(uow: UnitOfWork, *, lease_s: float, max_tries: int) -> int:
    """Attempts stuck in 'dispatching' past the lease: the process died during a provider call."""
    now = datetime.now(UTC)
    stale = await repo.lock_interrupted(uow.session, status=AttemptStatus.DISPATCHING.value,
                                        dispatched_before=now - timedelta(seconds=lease_s))
    changes = []
    for row in stale:
        a = dict(row._mapping)
        if a["channel"] == "sms" and a["tries"] < max_tries:
            event, detail = AttemptEvent.RESEND, a["detail"]  # same contact_id = same idempotency key
        elif a["channel"] == "sms":
            event, detail = AttemptEvent.GAVE_UP, "interrupted too often during SMS delivery"
        else:
            event, detail = AttemptEvent.INTERRUPTED, "interrupted during SMTP delivery; not re-sent"
        after = ATTEMPT.apply(AttemptStatus.DISPATCHING, event)
        a.update(status=after.value, detail=detail, next_try_at=now)
        changes.append(a)
        if after is not AttemptStatus.SENDING:
            _emit_outcome(uow, a, after.value, detail=detail)
    await repo.store(uow.session, changes)
    if stale:
        log.warning("recovered interrupted dispatches", extra={"count": len(stale)})
    return len(stale)


async def record_receipts(uow: UnitOfWork, *, receipts: Sequence[Receipt]) -> int:
    """Delivery receipts from the SMS provider; an undelivered SMS is announced as failed. Returns how
    many attempts changed (unknown ids, other channels and late receipts change nothing)."""
    current = {k: dict(v._mapping) for k, v in (await repo.lock(uow.session, (r.contact_id for r in receipts))).items()}
    changed: dict[str, dict[str, Any]] = {}
    updated = 0
    for r in receipts:
        a = current.get(r.contact_id)
        if a is None or a["channel"] != "sms":
            continue
        event = AttemptEvent.DELIVERED if r.delivered else AttemptEvent.UNDELIVERED
        try:
            after = ATTEMPT.apply(AttemptStatus(a["status"]), event)
        except IllegalTransition:
            continue
        a.update(status=after.value, provider_ref=r.provider_ref)
        changed[r.contact_id] = a
        updated += 1
        if after is AttemptStatus.FAILED:
            _emit_outcome(uow, a, "failed", provider_ref=r.provider_ref,
                          detail="provider reported the SMS undelivered")
    await repo.store(uow.session, list(changed.values()))
    return updated


async def contact_history(session: Any, *, tenant: str, account_id: str, limit: int) -> list[ContactAttempt]:
    """Contact attempts of one of the tenant's accounts, newest first."""
    return await repo.history(session, tenant=tenant, account_id=account_id, limit=limit)

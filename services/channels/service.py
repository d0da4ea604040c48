"""Channels' use cases: record approved contacts, claim and record dispatches, recover interrupted
ones, take delivery receipts, read the contact history.

So that a crash never sends the same contact twice:
1. an approved contact is recorded 'sending' (keyed by contact_id) in the consumer's unit of work;
2. the dispatcher worker claims 'sending' rows and commits them 'dispatching' before any provider
   call, then records the provider's answer and the ContactOutcome in a second unit of work;
3. a row found 'dispatching' after the lease means we crashed mid-call: an SMS is re-sent with the
   same idempotency key (the provider dedupes); e-mail has no such key, so it becomes 'unknown' and
   is reported, never re-sent.
Delivery receipts (the provider's signed webhook) and the reconciler's polls (for receipts that never
came) go through one use case, ``record_receipts``: a receipt counts only for an SMS of ours whose
provider reference and provider account it names. An SMS with no final status after the give-up age
becomes 'unknown'. Statuses come from ``domain/states.py``.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from services.channels import metrics as channels_metrics
from services.channels.db import repository as repo
from services.channels.db.models import ContactAttempt
from services.channels.domain.inbound import CONFIRMATION_TEMPLATE, confirmation_text, opt_out_keyword
from services.channels.domain.messages import FINAL_STATUSES, OutgoingEmail, OutgoingSms, SendResult, StatusReport
from services.channels.domain.states import ATTEMPT, AttemptEvent, AttemptStatus, creation_event, retry_delay_s
from services.channels.domain.templates import TemplateContext, render
from shared import metrics
from shared.contracts import topics
from shared.contracts.events import Channel, ContactApprovedV1, ContactOptOutV1, ContactOutcomeV1, HoldChangedV1
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
    """A provider's delivery receipt for one of our SMS, from ``account`` (the signer, or the account the
    reconciler asked)."""

    contact_id: str
    provider_ref: str
    delivered: bool
    account: str


@dataclass(slots=True)
class ReceiptTally:
    """What a batch of receipts did: ``updated`` attempts changed, ``ignored`` changed nothing (unknown
    reference, another account's, late or repeated), ``deferred`` are for sends we have not recorded yet
    (the provider should send them again)."""

    updated: int = 0
    ignored: int = 0
    deferred: int = 0


# attempt statuses that are also the outcome announced for them (sending and dispatching are not settled)
SETTLED = frozenset(s.value for s in (AttemptStatus.SENT, AttemptStatus.DELIVERED, AttemptStatus.FAILED,
                                      AttemptStatus.UNKNOWN, AttemptStatus.TASK_CREATED, AttemptStatus.REVOKED))


def _emit_outcome(uow: UnitOfWork, a: Mapping[str, Any], outcome: str, *, provider_ref: str | None = None,
                  detail: str | None = None, occurred_at: datetime | None = None) -> None:
    if a["template_id"].startswith("system."):
        return  # our own messages (an opt-out's confirmation) are no collection contact: nobody waits for them
    payload = ContactOutcomeV1(
        tenant=a["tenant"], contact_id=a["contact_id"], account_id=a["account_id"], customer_id=a["customer_id"],
        channel=a["channel"], outcome=outcome, provider_ref=provider_ref, detail=detail,
        occurred_at=occurred_at or datetime.now(UTC), borrower_key=a.get("borrower_key"))
    uow.emit(topics.CONTACT_OUTCOME, payload, subject=a["contact_id"])


DestinationKeyOf = Callable[[str, str, str | None], str | None]  # (tenant, channel, sealed) -> cp1 key


async def record_approved(uow: UnitOfWork, *, approved: Sequence[ContactApprovedV1],
                          destination_key_of: DestinationKeyOf | None = None) -> int:
    """Record each approved contact once ('sending', before any provider call); calls and visits become
    agent tasks at once. Returns how many were new."""
    rows = []
    for a in approved:
        r = a.request
        rows.append({
            "contact_id": r.contact_id, "tenant": r.tenant, "account_id": r.account_id,
            "account_ref": r.account_ref, "borrower_key": r.borrower_key, "customer_id": r.customer_id,
            "channel": r.channel.value,
            "template_id": r.template_id,
            "locale": r.locale, "days_past_due": r.days_past_due, "overdue_minor": r.overdue_minor,
            "currency": r.currency, "due_date": r.due_date, "destination_sealed": r.destination,
            "destination_key": destination_key_of(r.tenant, r.channel.value, r.destination)
            if destination_key_of else None,
            "status": ATTEMPT.apply(AttemptStatus.NEW, creation_event(r.channel.value)).value, "tries": 0})
    created = await repo.insert_new(uow.session, rows)
    for a in created:
        if a.status == AttemptStatus.TASK_CREATED:
            _emit_outcome(uow, a._mapping, "task_created", detail=f"{a.channel} task for an agent")
    # An approval for a contact already recorded (the scheduler asked again because it saw no outcome): the
    # contact is never made twice, but a settled one's outcome is announced again, as of when it happened.
    repeated = {str(r["contact_id"]) for r in rows} - {a.contact_id for a in created}
    if repeated:
        for a in (await repo.lock(uow.session, repeated)).values():
            if a.status in SETTLED:
                _emit_outcome(uow, a._mapping, a.status, provider_ref=a.provider_ref,
                              detail="announced again: the contact was already made", occurred_at=a.updated_at)
    return len(created)


async def revoke_for_holds(uow: UnitOfWork, *, holds: Sequence[HoldChangedV1]) -> int:
    """A hold placed after an approval stops what is not yet sent: attempts still waiting for the dispatcher
    (``sending``) on the held account (or every account of the customer) become ``revoked``, announced as
    such. One already being sent is not stopped (its send may have gone out). Returns how many."""
    placed = [h for h in holds if h.action == "placed"]
    if not placed:
        return 0
    waiting = await repo.lock_waiting(uow.session, status=AttemptStatus.SENDING.value,
                                      accounts=[(h.tenant, h.account_id) for h in placed if h.account_id],
                                      customers=[(h.tenant, h.customer_id) for h in placed if not h.account_id])
    why = {(h.tenant, h.account_id or h.customer_id): f"revoked: {h.kind} hold ({h.reason[:200]})" for h in placed}
    changes = []
    for a in waiting:
        row = dict(a._mapping)
        row.update(status=ATTEMPT.apply(AttemptStatus(row["status"]), AttemptEvent.REVOKED).value,
                   detail=why.get((row["tenant"], row["account_id"])) or why.get((row["tenant"], row["customer_id"])))
        changes.append(row)
        _emit_outcome(uow, row, "revoked", detail=row["detail"])
    await repo.store(uow.session, changes)
    return len(changes)


@dataclass(frozen=True, slots=True)
class Reply:
    """A customer's SMS to us, as the provider reports it (``sender`` in plaintext: never stored)."""

    message_id: str
    sender: str
    body: str
    received_at: datetime
    account: str


@dataclass(slots=True)
class ReplyTally:
    """What a batch of replies did."""

    opted_out: int = 0   # replies that were an opt-out keyword and found whom they concern
    other: int = 0       # any other reply (kept for an agent later; nothing automatic)
    repeated: int = 0    # delivered before
    unknown: int = 0     # an opt-out from a number we never wrote to (nothing to stop)


async def record_replies(uow: UnitOfWork, *, replies: Sequence[Reply], destination_key_of: Callable[[str, str], str],
                         seal: Callable[[str, str], str], lookback: timedelta) -> ReplyTally:
    """An opt-out reply (TD, 退订, STOP ...) to our SMS: each tenant that wrote to that number within
    ``lookback`` is told at once (``channels.opt-out.v1``, compliance suppresses the number for it) and the
    customer gets one confirmation per tenant. Each provider message id counts once."""
    tally = ReplyTally()
    now = datetime.now(UTC)
    for r in replies:
        keyword = opt_out_keyword(r.body)
        if not await repo.add_inbound(uow.session, message_id=r.message_id, provider_account=r.account,
                                      keyword=keyword, received_at=r.received_at):
            tally.repeated += 1
            continue
        if keyword is None:
            tally.other += 1
            continue
        key = destination_key_of("sms", r.sender)
        recipients = await repo.recent_recipients(uow.session, destination_key=key, channel="sms",
                                                  since=now - lookback)
        if not recipients:
            tally.unknown += 1
            continue
        confirmations = []
        for rec in recipients:
            uow.emit(topics.OPT_OUT, ContactOptOutV1(
                tenant=rec.tenant, customer_id=rec.customer_id, channel=Channel.SMS, destination_key=key,
                keyword=keyword, message_id=r.message_id, received_at=r.received_at, source="sms-reply"),
                subject=r.message_id)
            confirmations.append({
                "contact_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"opt-out|{r.message_id}|{rec.tenant}")),
                "tenant": rec.tenant, "account_id": rec.account_id, "account_ref": rec.account_ref,
                "customer_id": rec.customer_id, "channel": "sms", "template_id": CONFIRMATION_TEMPLATE,
                "locale": rec.locale, "days_past_due": 0, "overdue_minor": 0, "currency": rec.currency,
                "due_date": rec.due_date, "destination_sealed": seal(r.sender, rec.tenant), "destination_key": key,
                "status": ATTEMPT.apply(AttemptStatus.NEW, AttemptEvent.QUEUED).value, "tries": 0})
        await repo.insert_new(uow.session, confirmations)
        await repo.set_inbound_tenants(uow.session, message_id=r.message_id, tenants=len(recipients))
        tally.opted_out += 1
    return tally


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
            if a.template_id == CONFIRMATION_TEMPLATE:
                ready.append(OutgoingSms(a.contact_id, to, confirmation_text(a.locale)))
                continue
            text = render(a.template_id, TemplateContext(a.account_ref, a.days_past_due, a.overdue_minor,
                                                         a.currency, a.due_date, a.locale))
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
                         provider_account=r.account, detail=None, next_try_at=now)
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


async def record_receipts(uow: UnitOfWork, *, receipts: Sequence[Receipt], legacy_account: str,
                          source: str = "webhook") -> ReceiptTally:
    """Final statuses of our SMS, from the provider's signed receipts or the reconciler's polls. A receipt
    counts only for an SMS attempt whose stored provider reference it names, sent through the account it
    comes from (``legacy_account`` for SMS recorded before accounts were stored); anything else changes
    nothing and is counted in ``channels_receipts_total``. An undelivered SMS is announced as failed;
    one we had given up on ('unknown') is announced again with its final outcome."""
    current = {k: dict(v._mapping) for k, v in (await repo.lock(uow.session, (r.contact_id for r in receipts))).items()}
    changed: dict[str, dict[str, Any]] = {}
    tally = ReceiptTally()
    for r in receipts:
        a = current.get(r.contact_id)
        result = _receipt_result(a, r, legacy_account)
        if result != "matched" or a is None:
            channels_metrics.RECEIPTS.labels(source, result).inc()
            if result == "deferred":
                tally.deferred += 1
            else:
                tally.ignored += 1
            continue
        before = AttemptStatus(a["status"])
        try:
            after = ATTEMPT.apply(before, AttemptEvent.DELIVERED if r.delivered else AttemptEvent.UNDELIVERED)
        except IllegalTransition:
            tally.ignored += 1  # late or repeated: the attempt already has its final status
            channels_metrics.RECEIPTS.labels(source, "duplicate").inc()
            continue
        channels_metrics.RECEIPTS.labels(source, "applied").inc()
        a.update(status=after.value, detail=None if after is AttemptStatus.DELIVERED else
                 "provider reported the SMS undelivered")
        changed[r.contact_id] = a
        tally.updated += 1
        if after is AttemptStatus.FAILED:
            _emit_outcome(uow, a, "failed", provider_ref=r.provider_ref, detail=a["detail"])
        elif before is AttemptStatus.UNKNOWN:  # the scheduler was told 'unknown': it did arrive after all
            _emit_outcome(uow, a, "delivered", provider_ref=r.provider_ref)
    await repo.store(uow.session, list(changed.values()))
    return tally


def _receipt_result(a: Mapping[str, Any] | None, r: Receipt, legacy_account: str) -> str:
    """'matched', or why a receipt cannot count for the attempt it names (a label of channels_receipts_total)."""
    if a is None or a["channel"] != "sms":
        return "unknown_ref"
    if a["provider_ref"] is None and a["status"] == AttemptStatus.DISPATCHING:
        return "deferred"  # the provider answered our send, we have not recorded its answer yet
    if a["provider_ref"] != r.provider_ref:
        return "unknown_ref"
    if (a["provider_account"] or legacy_account) != r.account:
        return "wrong_account"
    return "matched"


async def claim_for_reconcile(uow: UnitOfWork, *, after_s: float, limit: int) -> list[Any]:
    """Claim SMS 'sent' more than ``after_s`` ago whose next check is due (SKIP LOCKED); their next check
    moves ``after_s`` ahead, committed before the provider is asked."""
    return await repo.claim_unsettled(uow.session, status=AttemptStatus.SENT.value, channel="sms",
                                      sent_before=datetime.now(UTC) - timedelta(seconds=after_s),
                                      recheck_in=timedelta(seconds=after_s), limit=limit)


async def record_polled(uow: UnitOfWork, *, claimed: Sequence[Any], reports: Sequence[StatusReport],
                        give_up_s: float, legacy_account: str) -> ReceiptTally:
    """Apply what the provider said about claimed SMS: a final status as a receipt would
    (``record_receipts``); an SMS still without one ``give_up_s`` after it was sent (whatever the answer,
    or none) becomes 'unknown' and is announced so. Idempotent: a repeated poll changes nothing."""
    by_id = {a.contact_id: a for a in claimed}
    await repo.lock(uow.session, by_id)  # every row at once, in one order (no deadlock with a webhook)
    final: list[Receipt] = []
    pending: list[StatusReport] = []
    for report in reports:
        a = by_id.get(report.contact_id)
        if a is None:
            continue
        if report.status in FINAL_STATUSES:
            channels_metrics.RECONCILED.labels("final").inc()
            final.append(Receipt(a.contact_id, a.provider_ref, report.status == "delivered",
                                 a.provider_account or legacy_account))
        else:
            channels_metrics.RECONCILED.labels("error" if report.status is None else "pending").inc()
            pending.append(report)
    tally = await record_receipts(uow, receipts=final, legacy_account=legacy_account, source="reconciler")
    give_up_before = datetime.now(UTC) - timedelta(seconds=give_up_s)
    current = await repo.lock(uow.session, (r.contact_id for r in pending))
    changes = []
    for report in pending:
        row = current.get(report.contact_id)
        if (row is None or row.status != AttemptStatus.SENT or row.dispatched_at is None
                or row.dispatched_at >= give_up_before):
            continue
        a = dict(row._mapping)
        last = report.status or f"no answer ({mask_text(report.error or '')[:200]})"
        a.update(status=ATTEMPT.apply(AttemptStatus.SENT, AttemptEvent.EXPIRED).value,
                 detail=f"no final status from the SMS provider within {give_up_s:g} s; last: {last}")
        changes.append(a)
        _emit_outcome(uow, a, "unknown", provider_ref=a["provider_ref"], detail=a["detail"])
        channels_metrics.RECONCILED.labels("gave_up").inc()
        tally.updated += 1
    await repo.store(uow.session, changes)
    if changes:
        log.warning("SMS without a final status given up on", extra={"count": len(changes)})
    return tally


async def contact_history(session: Any, *, tenant: str, account_id: str | None = None, status: str | None = None,
                          limit: int) -> list[ContactAttempt]:
    """The tenant's contact attempts of one account and/or in one status, newest first."""
    return await repo.history(session, tenant=tenant, account_id=account_id, status=status, limit=limit)

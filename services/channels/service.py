"""Channels' use cases: record approved contacts, claim and record dispatches, recover interrupted
ones, take delivery receipts, read the contact history.

So that a crash never sends the same contact twice:
1. an approved contact is recorded 'sending' (keyed by contact_id) in the consumer's unit of work;
2. the dispatcher worker claims 'sending' rows and commits them 'dispatching' before any provider
   call, then records the provider's answer and the ContactOutcome in a second unit of work;
3. a row found 'dispatching' after the lease means we crashed mid-call: an SMS is re-sent with the
   same idempotency key (the provider dedupes); e-mail has no such key, so it becomes 'unknown' and
   is reported, never re-sent.
Customers opt out by replying TD / STOP to an SMS (``record_replies``) or through the signed unsubscribe
link every e-mail carries (``record_unsubscribe``); both are announced on ``channels.opt-out.v1``.
Delivery receipts (the provider's signed webhook) and the reconciler's polls (for receipts that never
came) go through one use case, ``record_receipts``: a receipt counts only for an SMS of ours whose
provider reference and provider account it names. An SMS with no final status after the give-up age
becomes 'unknown'. Statuses come from ``domain/states.py``.

Holds (``compliance.hold-changed.v1``) travel on another topic than approvals, so either may arrive first.
Channels keeps every hold it hears of (``known_holds``: newest fact by ``occurred_at`` wins) and revokes an SMS or
e-mail not yet handed to a provider whose account (or customer) is under a hold in force at any instant since
its approval: when the hold arrives (``revoke_for_holds``), when the approval arrives (``record_approved``),
and once more when the dispatcher claims it (``revoke_held_claims``). So the end state is the same whatever
the order: revoked, and a later lift does not bring it back (the scheduler plans a new step).
"""

from __future__ import annotations

import logging
import re
import secrets
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.channels import metrics as channels_metrics
from services.channels.db import repository as repo
from services.channels.db.models import ContactAttempt
from services.channels.domain.inbound import CONFIRMATION_TEMPLATE, confirmation_text, opt_out_keyword
from services.channels.domain.messages import FINAL_STATUSES, OutgoingEmail, OutgoingSms, SendResult, StatusReport
from services.channels.domain.states import ATTEMPT, AttemptEvent, AttemptStatus, creation_event, retry_delay_s
from services.channels.domain.templates import (
    NO_CONTENT,
    Branding,
    Compiled,
    TemplateContext,
    TenantContent,
    check_branding,
    check_version,
    compile_version,
    render,
    template_locale,
)
from services.channels.domain.unsubscribe import Unsubscribe, issue
from shared import metrics, portal_links
from shared.cache import TenantCache
from shared.contracts import topics
from shared.contracts.events import Channel, ContactApprovedV1, ContactOptOutV1, ContactOutcomeV1, HoldChangedV1
from shared.crypto import PiiCipher
from shared.db import lock_account_keys
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
                          destination_key_of: DestinationKeyOf | None = None,
                          approved_at: Sequence[datetime] = ()) -> int:
    """Record each approved contact once ('sending', before any provider call); calls and visits become
    agent tasks at once. An SMS or e-mail whose account (or customer) is under a hold in force at any
    instant since its approval is recorded ``revoked`` at once, announced so. ``approved_at``: when each was
    approved (the approvals' envelope times, in order; the request time stands in for one not given).
    Returns how many were new."""
    rows = []
    for n, a in enumerate(approved):
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
            "approved_at": approved_at[n] if n < len(approved_at) else r.requested_at,
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
    waiting = [dict(a._mapping) for a in created if a.status == AttemptStatus.SENDING]
    if waiting:
        # after the row locks above, never before: a transaction holding these customers' locks never waits
        # for a row lock (no deadlock with the dispatcher's claim, which takes them after its rows)
        await lock_account_keys(uow.session, {(a["tenant"], a["customer_id"]) for a in waiting})
        held = await repo.holds_over(uow.session, waiting)
        await _revoke(uow, [a for a in waiting if a["contact_id"] in held], held, repo.store)
    return len(created)


@dataclass(frozen=True, slots=True)
class _Held:
    """The hold that stops a contact (a row of ``repo.holds_over`` has the same fields)."""

    hold_id: str
    kind: str
    reason: str


def _hold_detail(hold_id: str, kind: str) -> str:
    # only what every fact of the hold says alike (a lift heard of first carries the lift's reason), so the
    # detail is the same whatever the order; the reason is in compliance (GET /v1/holds)
    return f"revoked: {kind} hold {hold_id}"


async def _revoke(uow: UnitOfWork, attempts: Sequence[dict[str, Any]], held: Mapping[str, Any],
                  store: Callable[[Any, Sequence[Mapping[str, Any]]], Any]) -> int:
    """Revoke these 'sending' attempts, each naming its hold (``held`` by contact id: hold_id, kind, reason),
    announce them and store them with ``store``."""
    for a in attempts:
        h = held[a["contact_id"]]
        a.update(status=ATTEMPT.apply(AttemptStatus.SENDING, AttemptEvent.REVOKED).value,
                 detail=_hold_detail(h.hold_id, h.kind))
        _emit_outcome(uow, a, "revoked", detail=a["detail"])
    await store(uow.session, attempts)
    return len(attempts)


def _newest_facts(holds: Sequence[HoldChangedV1]) -> list[dict[str, Any]]:
    """One row per (tenant, hold_id): its newest fact by ``occurred_at`` (a lift wins a tie), with the reason
    it was placed when a placement is among them (as ``repo.merge_holds`` merges with what is stored)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    placed_reasons: dict[tuple[str, str], str] = {}
    for h in holds:
        key = (h.tenant, h.hold_id)
        if h.action == "placed":
            placed_reasons[key] = h.reason
        kept = rows.get(key)
        if kept is None or (h.occurred_at, h.action == "lifted") > (kept["state_at"], kept["state"] == "lifted"):
            rows[key] = {"tenant": h.tenant, "hold_id": h.hold_id, "customer_id": h.customer_id,
                         "account_id": h.account_id, "kind": h.kind, "reason": h.reason, "starts_at": h.starts_at,
                         "ends_at": h.ends_at, "state": h.action, "state_at": h.occurred_at}
    for key, reason in placed_reasons.items():
        rows[key]["reason"] = reason
    return list(rows.values())


async def revoke_for_holds(uow: UnitOfWork, *, holds: Sequence[HoldChangedV1]) -> int:
    """Keep each hold's newest fact (``known_holds``), then revoke what it stops and is not yet sent: attempts still
    waiting for the dispatcher (``sending``) on the held account (or every account of the customer), if the
    hold was in force at any instant since they were approved, become ``revoked``, announced as such. One
    already being sent is not stopped (its send may have gone out). A lift revokes nothing it had not (a hold
    lifted before an approval never stops it) and brings nothing back. Returns how many."""
    if not holds:
        return 0
    facts = _newest_facts(holds)
    await lock_account_keys(uow.session, {(h["tenant"], h["customer_id"]) for h in facts})
    await repo.merge_holds(uow.session, facts)
    found = await repo.lock_held(uow.session, status=AttemptStatus.SENDING.value,
                                 holds=[(h["tenant"], h["hold_id"]) for h in facts])
    held: dict[str, Any] = {}
    attempts: dict[str, dict[str, Any]] = {}
    for row in found:  # earliest-starting hold first
        if row.contact_id not in attempts:
            attempts[row.contact_id] = {k: v for k, v in row._mapping.items() if not k.startswith("hold_")}
            held[row.contact_id] = _Held(row.hold_id, row.hold_kind, row.hold_reason)
    return await _revoke(uow, list(attempts.values()), held, repo.store)


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


EMAIL_LINK_ACCOUNT = "email-link"  # inbound_messages.provider_account of unsubscribe-link requests
UNSUBSCRIBE_KEYWORD = "UNSUBSCRIBE"


async def record_unsubscribe(uow: UnitOfWork, *, request: Unsubscribe, received_at: datetime) -> bool:
    """A customer used the unsubscribe link of one of our e-mails (a genuine, unexpired token): that address
    is suppressed for that tenant only (``channels.opt-out.v1``, channel e-mail, source ``email-link``; compliance
    suppresses it at once). One opt-out per e-mail's link, however often it is used: False when it was used
    before (nothing emitted)."""
    if not await repo.add_inbound(uow.session, message_id=request.message_id, provider_account=EMAIL_LINK_ACCOUNT,
                                  keyword=UNSUBSCRIBE_KEYWORD, received_at=received_at):
        return False
    uow.emit(topics.OPT_OUT, ContactOptOutV1(
        tenant=request.tenant, customer_id=request.customer_id, channel=Channel.EMAIL,
        destination_key=request.destination_key, keyword=UNSUBSCRIBE_KEYWORD, message_id=request.message_id,
        received_at=received_at, source="email-link"), subject=request.message_id)
    await repo.set_inbound_tenants(uow.session, message_id=request.message_id, tenants=1)
    return True


async def claim_for_dispatch(uow: UnitOfWork, *, limit: int) -> list[Any]:
    """Claim a batch of attempts to send ('dispatching', tries + 1); commit before calling a provider.
    Pass the claim through ``revoke_held_claims`` in the same unit of work before sending."""
    return await repo.claim(uow.session, status=AttemptStatus.SENDING.value,
                            claimed_status=ATTEMPT.apply(AttemptStatus.SENDING, AttemptEvent.CLAIMED).value,
                            limit=limit)


async def revoke_held_claims(uow: UnitOfWork, *, claimed: Sequence[Any]) -> list[Any]:
    """The last check before a provider is called, in the claim's unit of work: a claimed attempt whose
    account (or customer) came under a hold in force at any instant since its approval (a hold that started
    since, or one whose revocation missed it while the claim held its row) is not sent but revoked, as if it
    had never been claimed. Returns the attempts still to send. One hold lookup per claim, whatever its size."""
    if not claimed:
        return []
    # our own messages (an opt-out's confirmation) are no collection contact: no hold stops them
    rows = [dict(a._mapping) for a in claimed if not a.template_id.startswith("system.")]
    for a in rows:
        a["approved_at"] = a["approved_at"] or a["created_at"]
    # after the claim's row locks (see record_approved)
    await lock_account_keys(uow.session, {(a["tenant"], a["customer_id"]) for a in rows})
    held = await repo.holds_over(uow.session, rows)
    if not held:
        return list(claimed)
    await _revoke(uow, [a for a in rows if a["contact_id"] in held], held, repo.unclaim)
    return [a for a in claimed if a.contact_id not in held]


@dataclass(frozen=True, slots=True)
class UnsubscribeLinks:
    """Makes each e-mail's unsubscribe link: ``<base_url>/v1/unsubscribe/<token>``, the token signed with the
    active key and valid for ``ttl`` from when the e-mail is prepared (``domain/unsubscribe.py``)."""

    base_url: str
    key_id: str
    key: bytes
    ttl: timedelta
    destination_key_of: Callable[[str], str]  # an address -> its cp1: key (shared/identity.py)

    def __call__(self, a: Any, to: str, now: datetime | None = None) -> str:
        expires = (now or datetime.now(UTC)) + self.ttl
        token = issue(Unsubscribe(tenant=a.tenant, customer_id=a.customer_id, contact_id=a.contact_id,
                                  destination_key=self.destination_key_of(to), locale=template_locale(a.locale),
                                  expires_at=int(expires.timestamp())), key_id=self.key_id, key=self.key)
        return f"{self.base_url}/v1/unsubscribe/{token}"


@dataclass(frozen=True, slots=True)
class PortalLinks:
    """Makes each message's ``portal_url``: the customer's one-time link to plans' customer portal for the
    contact's account, ``<base_url>/portal/l/<token>``, the token (``shared/portal_links.py``) signed with the
    shared portal key, a random nonce, valid for ``ttl`` from when the message is prepared. Plans stores the
    nonce when the link is first used. A credential: never logged."""

    base_url: str
    key: bytes = field(repr=False)
    ttl: timedelta

    def __call__(self, a: Any, now: datetime | None = None) -> str | None:
        expires = int(((now or datetime.now(UTC)) + self.ttl).timestamp())
        try:
            token = portal_links.mint(self.key, tenant=a.tenant, account_id=a.account_id,
                                      nonce=secrets.token_bytes(portal_links.NONCE_BYTES), expires_at=expires)
        except ValueError:  # an id no link can carry: the message goes without one
            return None
        return f"{self.base_url}/portal/l/{token}"


def prepare_messages(claimed: Sequence[Any], cipher: PiiCipher, *, unsubscribe: UnsubscribeLinks | None = None,
                     content: Mapping[str, TenantContent] | None = None, portal: PortalLinks | None = None,
                     ) -> tuple[list[OutgoingSms | OutgoingEmail], list[SendResult]]:
    """Open each destination and render its template; a row that can never be sent fails on its own. Each
    e-mail gets its unsubscribe link (``unsubscribe``; none without it), in its body and its headers; each SMS
    and e-mail its ``portal_url`` (``portal``; none without it). Each tenant's branding and published templates
    (``content``, from ``tenant_content``) apply to its rows; without any, the built-ins and the default
    lender."""
    ready: list[OutgoingSms | OutgoingEmail] = []
    unusable: list[SendResult] = []
    for a in claimed:
        try:
            to = cipher.open(a.destination_sealed or "", context=a.tenant)
            tenant_content_ = content.get(a.tenant) if content else None
            if a.template_id == CONFIRMATION_TEMPLATE:
                branding = tenant_content_.branding if tenant_content_ is not None else None
                lender = branding.lender.get("zh-CN") if branding is not None else None
                ready.append(OutgoingSms(a.contact_id, to, confirmation_text(a.locale, lender)))
                continue
            link = unsubscribe(a, to) if unsubscribe is not None and a.channel == "email" else None
            portal_url = portal(a) if portal is not None else None
            text = render(a.template_id, TemplateContext(a.account_ref, a.days_past_due, a.overdue_minor,
                                                         a.currency, a.due_date, a.locale, unsubscribe_url=link,
                                                         portal_url=portal_url),
                          tenant_content_)
            if a.channel == "sms":
                if not E164.fullmatch(to):
                    raise ValueError("the phone number is not in E.164 form")
                ready.append(OutgoingSms(a.contact_id, to, text.body))
            else:
                ready.append(OutgoingEmail(a.contact_id, to, text.subject, text.body, unsubscribe_url=link))
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


# --- tenants' branding and templates (issue 7) ---------------------------------------------------------------
# A tenant's branding (lender name per locale, help line, complaint line) and its own versions of templates are
# published over REST, checked when published (domain/templates.py ``check_branding``, ``check_version``: refused
# with the lint's findings, nothing stored), versioned and immutable; the newest of each applies to the tenant's
# next messages. The dispatcher reads them through ``CONTENT`` (at most once per ``ttl`` seconds per tenant, two
# statements for every tenant of a claim that is due), never per message.


def branding_of(row: Any) -> Branding:
    return Branding({"zh-CN": row.lender_zh, "en": row.lender_en}, row.help_line, row.complaint_line, row.version)


class TenantContentCache:
    """Each tenant's ``TenantContent`` (branding and templates in force), read at most once per ``ttl`` seconds
    per tenant: a change published through this process applies to its next claim (``forget``), one published
    through another replica within ``ttl`` seconds. A published version is compiled once per process."""

    def __init__(self, ttl: float = 5.0, max_compiled: int = 10_000) -> None:
        self.max_compiled = max_compiled
        self._tenants: TenantCache[TenantContent] = TenantCache(self._load, ttl)
        self._compiled: dict[tuple[str, str, str, int], Compiled | None] = {}

    async def current(self, session: AsyncSession, tenants: Collection[str]) -> dict[str, TenantContent]:
        return await self._tenants.current(session, tenants)

    async def _load(self, session: AsyncSession, tenants: list[str]) -> dict[str, TenantContent]:
        brandings = {r.tenant: branding_of(r) for r in await repo.current_brandings(session, tenants)}
        in_force: dict[str, dict[tuple[str, str], Compiled]] = {}
        for r in await repo.current_template_versions(session, tenants):
            if (c := self.compiled(r)) is not None:
                in_force.setdefault(r.tenant, {})[(c.id, c.locale)] = c
        return {t: TenantContent(brandings.get(t), in_force.get(t, {})) if brandings.get(t) or in_force.get(t)
                else NO_CONTENT for t in tenants}

    def compiled(self, row: Any) -> Compiled | None:
        """A stored version, compiled (None, logged, if it no longer compiles: the built-in stands in)."""
        key = (row.tenant, row.template_id, row.locale, row.version)
        if key not in self._compiled:
            if len(self._compiled) >= self.max_compiled:
                self._compiled.clear()
            try:
                self._compiled[key] = compile_version(template_id=row.template_id, locale=row.locale,
                                                      channel=row.channel, subject=row.subject, body=row.body,
                                                      version=row.version)
            except (KeyError, ValueError) as exc:
                log.error("a published template no longer compiles; the built-in applies",
                          extra={"tenant": row.tenant, "template_id": row.template_id, "locale": row.locale,
                                 "version": row.version, "error": str(exc)[:200]})
                self._compiled[key] = None
        return self._compiled[key]

    def forget(self, tenant: str) -> None:
        self._tenants.forget(tenant)


CONTENT = TenantContentCache()


async def tenant_content(session: AsyncSession, tenants: Collection[str]) -> dict[str, TenantContent]:
    """The branding and templates in force for each of ``tenants`` (cached: see ``TenantContentCache``)."""
    return await CONTENT.current(session, tenants)


async def current_branding(session: AsyncSession, tenant: str) -> Any | None:
    """The tenant's branding row in force, as stored (None: the defaults)."""
    rows = await repo.current_brandings(session, [tenant])
    return rows[0] if rows else None


async def templates_in_force(session: AsyncSession, tenant: str) -> list[Any]:
    """The tenant's newest version of each template and locale it published, as stored."""
    return await repo.current_template_versions(session, [tenant])


async def publish_branding(uow: UnitOfWork, *, tenant: str, lender: Mapping[str, str], help_line: str,
                           complaint_line: str | None, created_by: str, reason: str) -> Any:
    """Store a new version of the tenant's branding (the next number) once it passes ``check_branding`` against
    the built-ins and the tenant's templates in force; BrandingRejected otherwise, nothing stored."""
    await repo.lock_tenant_content(uow.session, tenant, "content")
    templates = [c for r in await repo.current_template_versions(uow.session, [tenant])
                 if (c := CONTENT.compiled(r)) is not None]
    branding = check_branding(lender=lender, help_line=help_line, complaint_line=complaint_line, templates=templates)
    version = await repo.latest_branding_version(uow.session, tenant) + 1
    return await repo.add_branding(uow.session, {
        "tenant": tenant, "version": version, "lender_zh": branding.lender["zh-CN"],
        "lender_en": branding.lender["en"], "help_line": branding.help_line,
        "complaint_line": branding.complaint_line, "created_by": created_by, "reason": reason})


async def publish_template_version(uow: UnitOfWork, *, tenant: str, template_id: str, locale: str, channel: str,
                                   subject: str, body: str, created_by: str, reason: str) -> Any:
    """Store the tenant's next version of ``template_id`` in ``locale`` once it passes ``check_version`` (as the
    built-ins are checked, and with the tenant's branding); ContentRejected, TemplateSourceError or KeyError
    (unknown template) otherwise, nothing stored."""
    await repo.lock_tenant_content(uow.session, tenant, "content")
    branding_row = await current_branding(uow.session, tenant)
    version = await repo.latest_template_version(uow.session, tenant, template_id, locale) + 1
    check_version(template_id=template_id, locale=locale, channel=channel, subject=subject, body=body,
                  version=version, branding=branding_of(branding_row) if branding_row is not None else None)
    return await repo.add_template_version(uow.session, {
        "tenant": tenant, "template_id": template_id, "locale": locale, "version": version, "channel": channel,
        "subject": subject, "body": body, "created_by": created_by, "reason": reason})


async def branding_history(session: AsyncSession, tenant: str, *, limit: int) -> list[Any]:
    return await repo.branding_versions(session, tenant, limit=limit)


async def template_history(session: AsyncSession, tenant: str, template_id: str, *, locale: str | None,
                           limit: int) -> list[Any]:
    return await repo.template_versions(session, tenant, template_id, locale=locale, limit=limit)

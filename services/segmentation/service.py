"""Segmentation's use cases: store and classify overdue accounts, record payments, accept partners'
events, show an account to its servicer or a co-lender."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from services.segmentation.db import repository as repo
from services.segmentation.db.models import Account
from services.segmentation.domain.accounts import AccountStatus, after_payment, is_newer
from services.segmentation.domain.segments import classify
from shared.contracts import CloudEvent, topics
from shared.contracts.events import AccountOverdueV1, AccountSegmentedV1, PaymentReceivedV1
from shared.domain import DomainError, NotFound
from shared.uow import UnitOfWork

PARTNER_SOURCE = "urn:gentle-collections:segmentation:partner-api"


class CurrencyMismatch(DomainError):
    status = 422
    title = "Currency mismatch"


async def account_currencies(session: Any, *, tenant: str, account_ids: Sequence[str]) -> dict[str, str]:
    """The stored currency of each of these accounts of the tenant that exists."""
    return await repo.currencies(session, tenant=tenant, account_ids=account_ids)


async def record_overdue(uow: UnitOfWork, *, overdue: Sequence[tuple[AccountOverdueV1, CloudEvent]]) -> None:
    """Store each account, classify it, record the segment change and announce it. The newest fact per
    account wins (by event time), in the batch and against what is stored."""
    latest: dict[tuple[str, str], tuple[AccountOverdueV1, CloudEvent]] = {}
    for p, event in overdue:
        key = (p.tenant, p.account_id)
        if key not in latest or is_newer(event.time, latest[key][1].time):
            latest[key] = (p, event)
    stored = await repo.stored_as_of(uow.session, latest.keys())
    rows, history = [], []
    for key, (p, event) in latest.items():
        if not is_newer(event.time, stored.get(key)):
            continue
        c = classify(credit_rating=p.credit_rating, credit_score=p.credit_score, days_past_due=p.days_past_due)
        rows.append({
            "as_of": event.time,
            "tenant": p.tenant, "account_id": p.account_id, "customer_id": p.customer_id, "product": p.product,
            "currency": p.currency, "outstanding_minor": p.outstanding_minor, "overdue_minor": p.overdue_minor,
            "days_past_due": p.days_past_due, "due_date": p.due_date, "credit_rating": p.credit_rating,
            "credit_score": p.credit_score, "segment": c.segment.value, "dpd_bucket": c.dpd_bucket,
            "status": AccountStatus.OVERDUE.value, "name_sealed": p.contact.name, "phone_sealed": p.contact.phone,
            "email_sealed": p.contact.email, "address_sealed": p.contact.address,
            "time_zone": p.contact.time_zone, "locale": p.contact.locale,
            "co_lenders": [x.model_dump(mode="json") for x in p.co_lenders],
        })
        history.append({"tenant": p.tenant, "account_id": p.account_id, "segment": c.segment.value,
                        "dpd_bucket": c.dpd_bucket, "reason": c.reason, "event_id": event.id})
        uow.emit(topics.ACCOUNT_SEGMENTED, AccountSegmentedV1(
            tenant=p.tenant, account_id=p.account_id, customer_id=p.customer_id, segment=c.segment,
            dpd_bucket=c.dpd_bucket, days_past_due=p.days_past_due, due_date=p.due_date, currency=p.currency,
            overdue_minor=p.overdue_minor, outstanding_minor=p.outstanding_minor, reason=c.reason,
            contact=p.contact), cause=event, subject=p.account_id)
    await repo.save_accounts(uow.session, rows)
    await repo.add_segment_changes(uow.session, history)


async def record_payments(uow: UnitOfWork, *, payments: Sequence[PaymentReceivedV1]) -> None:
    """Record each payment once and reduce the account's balances; a cleared overdue amount cures it."""
    # by account, keeping each account's own order: row locks are always taken in the same order
    for p in sorted(payments, key=lambda p: (p.tenant, p.account_id)):
        if not await repo.record_payment(uow.session, tenant=p.tenant, payment_id=p.payment_id,
                                         account_id=p.account_id, amount_minor=p.amount_minor, currency=p.currency,
                                         paid_at=p.paid_at):
            continue
        account = await repo.lock_account(uow.session, tenant=p.tenant, account_id=p.account_id)
        if account is None:
            continue
        if account.currency != p.currency:
            # never silently ignored: the consumer dead-letters it with this reason
            raise CurrencyMismatch(f"payment {p.payment_id} is in {p.currency}, account {p.account_id} in "
                                   f"{account.currency}")
        after = after_payment(overdue_minor=account.overdue_minor, outstanding_minor=account.outstanding_minor,
                              status=AccountStatus(account.status), amount_minor=p.amount_minor)
        await repo.set_balances(uow.session, tenant=p.tenant, account_id=p.account_id,
                                overdue_minor=after.overdue_minor, outstanding_minor=after.outstanding_minor,
                                status=after.status.value)


@dataclass(frozen=True, slots=True)
class PartnerEvent:
    """A partner's event, validated and sealed at the edge; ``event_id`` set when the partner named one."""

    topic: topics.Topic
    payload: BaseModel
    subject: str
    event_id: str | None


def accept_partner_events(uow: UnitOfWork, *, events: Sequence[PartnerEvent]) -> list[str]:
    """Publish partners' events to the same topics core banking uses; returns their event ids."""
    return [uow.emit(e.topic, e.payload, subject=e.subject, event_id=e.event_id, source=PARTNER_SOURCE).id
            for e in events]


Access = Literal["servicer", "co-lender"]


async def account_for(session: Any, *, tenant: str, account_id: str) -> tuple[Account, Access]:
    """An account for its servicer, or for one of its co-lenders (who may read it, never act on it)."""
    candidates = await repo.accounts_with_id(session, account_id)
    rows = [a for a in candidates if a.tenant == tenant] or [
        a for a in candidates if any(c.get("tenant") == tenant for c in a.co_lenders)]
    if not rows:
        raise NotFound(f"No account {account_id!r} for your tenant.")
    return rows[0], "servicer" if rows[0].tenant == tenant else "co-lender"

"""Segmentation's use cases: store and classify overdue accounts, record payments, accept partners'
events, show an account to its servicer or a co-lender.

Facts are kept whatever order they arrive in (docs/events.md, "Keys and ordering"): an account's newest
overdue snapshot (by its event time ``as_of``) and every payment, once, even before the account is
known. The account's balances and status are derived from them (``domain/accounts.py``) whenever a
snapshot or a payment arrives, so the end state never depends on the arrival order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from services.segmentation.db import repository as repo
from services.segmentation.db.models import Account
from services.segmentation.domain.accounts import PaymentFact, Snapshot, balances, in_other_currencies, supersedes
from services.segmentation.domain.segments import Classification, classify
from shared.contracts import CloudEvent, topics
from shared.contracts.events import AccountOverdueV1, AccountSegmentedV1, PaymentReceivedV1
from shared.db import lock_account_keys
from shared.domain import DomainError, NotFound
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)
PARTNER_SOURCE = "urn:gentle-collections:segmentation:partner-api"
AccountKey = tuple[str, str]


class CurrencyMismatch(DomainError):
    status = 422
    title = "Currency mismatch"


async def account_currencies(session: Any, *, tenant: str, account_ids: Sequence[str]) -> dict[str, str]:
    """The stored currency of each of these accounts of the tenant that exists."""
    return await repo.currencies(session, tenant=tenant, account_ids=account_ids)


def _snapshot(account: Mapping[str, Any]) -> Snapshot:
    return Snapshot(account["as_of"], account["due_date"], account["days_past_due"],
                    account["reported_overdue_minor"], account["reported_outstanding_minor"])


async def _derive(uow: UnitOfWork, accounts: Mapping[AccountKey, dict[str, Any]]) -> None:
    """Set each account's balances and status from its snapshot and the payments kept for it, in place."""
    payments = await repo.payments_of(uow.session, accounts.keys())
    for key, a in accounts.items():
        facts = [PaymentFact(p.amount_minor, p.currency, p.paid_at) for p in payments.get(key, ())]
        if foreign := in_other_currencies(facts, currency=a["currency"]):
            # kept before the account was known; never counted (a later one is refused: CurrencyMismatch)
            log.warning("payments in another currency than their account are not counted", extra={
                "tenant": a["tenant"], "account_id": a["account_id"], "account_currency": a["currency"],
                "payment_currencies": sorted({p.currency for p in foreign}), "count": len(foreign)})
        now = balances(reported_overdue_minor=a["reported_overdue_minor"],
                       reported_outstanding_minor=a["reported_outstanding_minor"], currency=a["currency"],
                       as_of=a["as_of"], payments=facts)
        a.update(overdue_minor=now.overdue_minor, outstanding_minor=now.outstanding_minor, status=now.status.value)


def _account_row(p: AccountOverdueV1, event: CloudEvent, c: Classification) -> dict[str, Any]:
    """The account as the snapshot reports it; ``_derive`` adds the balances and status before it is saved."""
    return {
        "as_of": event.time,
        "tenant": p.tenant, "account_id": p.account_id, "customer_id": p.customer_id, "product": p.product,
        "currency": p.currency, "reported_outstanding_minor": p.outstanding_minor,
        "reported_overdue_minor": p.overdue_minor, "days_past_due": p.days_past_due, "due_date": p.due_date,
        "credit_rating": p.credit_rating, "credit_score": p.credit_score, "segment": c.segment.value,
        "dpd_bucket": c.dpd_bucket, "account_ref": p.account_ref,
        "name_sealed": p.contact.name, "phone_sealed": p.contact.phone, "email_sealed": p.contact.email,
        "address_sealed": p.contact.address, "time_zone": p.contact.time_zone, "locale": p.contact.locale,
        "co_lenders": [x.model_dump(mode="json") for x in p.co_lenders],
    }


BorrowerKeyOf = Callable[[AccountOverdueV1], str | None]


async def record_overdue(uow: UnitOfWork, *, overdue: Sequence[tuple[AccountOverdueV1, CloudEvent]],
                         borrower_key_of: BorrowerKeyOf | None = None) -> None:
    """Keep each account's newest snapshot (by event time, in the batch and against what is stored),
    classify it, derive its balances from the payments kept, record the segment change and announce it
    with the debtor's borrower key (``borrower_key_of``; shared/identity.py). An older or repeated snapshot
    changes nothing."""
    latest: dict[AccountKey, tuple[dict[str, Any], AccountOverdueV1, CloudEvent, Classification]] = {}
    for p, event in overdue:
        key = (p.tenant, p.account_id)
        c = classify(credit_rating=p.credit_rating, credit_score=p.credit_score, days_past_due=p.days_past_due)
        row = _account_row(p, event, c)
        if key not in latest or supersedes(_snapshot(row), _snapshot(latest[key][0])):
            latest[key] = (row, p, event, c)
    await lock_account_keys(uow.session, latest.keys())
    stored = await repo.lock_accounts(uow.session, latest.keys())
    fresh = {key: item for key, item in latest.items()
             if supersedes(_snapshot(item[0]), _snapshot(stored[key]._mapping) if key in stored else None)}
    await _derive(uow, {key: row for key, (row, _, _, _) in fresh.items()})
    await repo.save_accounts(uow.session, [row for row, _, _, _ in fresh.values()])
    await repo.add_segment_changes(uow.session, [
        {"tenant": p.tenant, "account_id": p.account_id, "segment": c.segment.value, "dpd_bucket": c.dpd_bucket,
         "reason": c.reason, "event_id": event.id} for _, p, event, c in fresh.values()])
    for _, p, event, c in fresh.values():
        # the snapshot's amounts as reported: the scheduler deducts the payments after ``as_of`` itself
        uow.emit(topics.ACCOUNT_SEGMENTED, AccountSegmentedV1(
            tenant=p.tenant, account_id=p.account_id, customer_id=p.customer_id, segment=c.segment,
            dpd_bucket=c.dpd_bucket, days_past_due=p.days_past_due, due_date=p.due_date, currency=p.currency,
            overdue_minor=p.overdue_minor, outstanding_minor=p.outstanding_minor, reason=c.reason,
            contact=p.contact, account_ref=p.account_ref, as_of=event.time,
            borrower_key=borrower_key_of(p) if borrower_key_of else None), cause=event, subject=p.account_id)


async def record_payments(uow: UnitOfWork, *, payments: Sequence[PaymentReceivedV1]) -> None:
    """Keep each payment once (even before its account is known), then derive again the balances of the
    stored accounts that got a new one: a payment booked after the account's snapshot reduces them, and
    clearing the overdue amount cures the account. A new payment in another currency than its stored
    account is refused (``CurrencyMismatch``: the consumer dead-letters it)."""
    unique: dict[tuple[str, str], PaymentReceivedV1] = {}
    for p in payments:
        unique.setdefault((p.tenant, p.payment_id), p)  # the first one recorded wins, as in the table
    await lock_account_keys(uow.session, {(p.tenant, p.account_id) for p in unique.values()})
    new = await repo.record_payments(uow.session, [
        {"tenant": p.tenant, "payment_id": p.payment_id, "account_id": p.account_id, "amount_minor": p.amount_minor,
         "currency": p.currency, "paid_at": p.paid_at} for p in unique.values()])
    fresh = [p for key, p in unique.items() if key in new]
    stored = await repo.lock_accounts(uow.session, {(p.tenant, p.account_id) for p in fresh})
    accounts = {key: dict(row._mapping) for key, row in stored.items()}
    for p in fresh:
        account = accounts.get((p.tenant, p.account_id))
        if account is not None and account["currency"] != p.currency:
            # never silently ignored: the consumer dead-letters it with this reason
            raise CurrencyMismatch(f"payment {p.payment_id} is in {p.currency}, account {p.account_id} in "
                                   f"{account['currency']}")
    before = {key: (a["overdue_minor"], a["outstanding_minor"], a["status"]) for key, a in accounts.items()}
    await _derive(uow, accounts)
    await repo.set_balances(uow.session, [
        a for key, a in accounts.items() if (a["overdue_minor"], a["outstanding_minor"], a["status"]) != before[key]])


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

"""Segmentation's consumers: overdue events -> account + segment -> AccountSegmented; payments."""

from __future__ import annotations

from sqlalchemy import case, func, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.segmentation.db.models import Account, Payment, SegmentChange
from services.segmentation.domain.segments import classify
from shared.contracts import CloudEvent, topics
from shared.contracts.events import AccountOverdueV1, AccountSegmentedV1, PaymentReceivedV1
from shared.db import table_of
from shared.kafka.consumer import Delivery, Handler
from shared.messaging import add_to_outbox, build_event
from shared.service import Runtime

SOURCE = "urn:gentle-collections:segmentation"
ACCOUNTS = table_of(Account)


async def on_account_overdue(session: AsyncSession, deliveries: list[Delivery]) -> None:
    """Store each account, classify it, record the change and announce it, in one transaction."""
    latest: dict[tuple[str, str], dict[str, object]] = {}
    history: dict[tuple[str, str], dict[str, object]] = {}
    outgoing: dict[tuple[str, str], tuple[topics.Topic, CloudEvent, str]] = {}
    for d in deliveries:
        p: AccountOverdueV1 = d.payload
        key = (p.tenant, p.account_id)
        if key in latest and latest[key]["as_of"] > d.event.time:  # type: ignore[operator]
            continue  # an older fact about the same account later in the batch
        c = classify(credit_rating=p.credit_rating, credit_score=p.credit_score, days_past_due=p.days_past_due)
        latest[key] = {
            "as_of": d.event.time,
            "tenant": p.tenant, "account_id": p.account_id, "customer_id": p.customer_id, "product": p.product,
            "currency": p.currency, "outstanding_minor": p.outstanding_minor, "overdue_minor": p.overdue_minor,
            "days_past_due": p.days_past_due, "due_date": p.due_date, "credit_rating": p.credit_rating,
            "credit_score": p.credit_score, "segment": c.segment.value, "dpd_bucket": c.dpd_bucket,
            "status": "overdue", "name_sealed": p.contact.name, "phone_sealed": p.contact.phone,
            "email_sealed": p.contact.email, "address_sealed": p.contact.address,
            "time_zone": p.contact.time_zone, "locale": p.contact.locale,
            "co_lenders": [c.model_dump(mode="json") for c in p.co_lenders],
        }
        history[key] = {"tenant": p.tenant, "account_id": p.account_id, "segment": c.segment.value,
                        "dpd_bucket": c.dpd_bucket, "reason": c.reason, "event_id": d.event.id}
        segmented = AccountSegmentedV1(
            tenant=p.tenant, account_id=p.account_id, customer_id=p.customer_id, segment=c.segment,
            dpd_bucket=c.dpd_bucket, days_past_due=p.days_past_due, due_date=p.due_date, currency=p.currency,
            overdue_minor=p.overdue_minor, outstanding_minor=p.outstanding_minor, reason=c.reason,
            contact=p.contact,
        )
        outgoing[key] = (topics.ACCOUNT_SEGMENTED, build_event(
            topics.ACCOUNT_SEGMENTED, segmented, tenant=p.tenant, customer_id=p.customer_id, source=SOURCE,
            cause=d.event, subject=p.account_id), p.customer_id)
    stmt = insert(ACCOUNTS)
    excluded = stmt.excluded
    rows = list(latest.values())
    # Facts arrive out of order across partitions and replays: an older one never overwrites a newer one.
    applied = await session.execute(stmt.on_conflict_do_update(
        index_elements=["tenant", "account_id"],
        set_={col: excluded[col] for col in rows[0] if col not in ("tenant", "account_id")}
        | {"updated_at": func.now()},
        where=ACCOUNTS.c.as_of <= excluded.as_of,
    ).returning(ACCOUNTS.c.tenant, ACCOUNTS.c.account_id), rows)
    fresh = [(r.tenant, r.account_id) for r in applied]
    if fresh:
        await session.execute(insert(table_of(SegmentChange)), [history[k] for k in fresh])
        await add_to_outbox(session, [outgoing[k] for k in fresh])


async def on_payment_received(session: AsyncSession, deliveries: list[Delivery]) -> None:
    """Record each payment once and reduce the account's overdue amount; cleared means cured."""
    for d in deliveries:
        p: PaymentReceivedV1 = d.payload
        inserted = (await session.execute(
            insert(Payment).values(tenant=p.tenant, payment_id=p.payment_id, account_id=p.account_id,
                                   amount_minor=p.amount_minor, currency=p.currency, paid_at=p.paid_at)
            .on_conflict_do_nothing().returning(Payment.payment_id)  # type: ignore[arg-type]
        )).first()
        if inserted is None:
            continue
        remaining = func.greatest(Account.overdue_minor - p.amount_minor, 0)
        await session.execute(
            update(Account)
            .where(Account.tenant == p.tenant, Account.account_id == p.account_id,  # type: ignore[arg-type]
                   Account.currency == p.currency)  # type: ignore[arg-type]
            .values(overdue_minor=remaining,
                    outstanding_minor=func.greatest(Account.outstanding_minor - p.amount_minor, 0),
                    status=case((remaining == 0, "cured"), else_=Account.status))
        )


def build_handlers(runtime: Runtime) -> dict[str, Handler]:
    return {topics.ACCOUNT_OVERDUE.name: on_account_overdue, topics.PAYMENT_RECEIVED.name: on_payment_received}

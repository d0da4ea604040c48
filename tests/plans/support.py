"""Making an account known to plans before a plan is agreed for it: its overdue notice and payments as the
plans consumer receives them (``Delivery`` objects for ``services/plans/consumers/handlers.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiokafka.structs import ConsumerRecord

from services.plans.consumers import handlers
from shared.contracts import topics
from shared.contracts.events import AccountOverdueV1, AccountSegmentedV1, PaymentReceivedV1
from shared.crypto import PiiCipher
from shared.kafka.consumer import Delivery
from shared.messaging import build_event
from shared.settings import DEV_PII_KEYS
from tests.helpers import committed

CIPHER = PiiCipher(DEV_PII_KEYS, "dev1")


def _delivery(topic: topics.Topic, payload: Any, at: datetime | None) -> Delivery:
    event = build_event(topic, payload, tenant=payload.tenant, customer_id=payload.customer_id,
                        source="urn:test:core-banking", subject=payload.account_id)
    if at is not None:
        event = event.model_copy(update={"time": at})
    record = ConsumerRecord(topic.name, 0, 0, 0, 0, b"", event.to_bytes(), None, 0, 0, [])
    return Delivery(event, payload, record)


def overdue_notice(tenant: str, account_id: str, *, overdue_minor: int = 100_000, currency: str = "CNY",
                   customer_id: str = "C1", days_past_due: int = 9, at: datetime | None = None,
                   outstanding_minor: int | None = None, product: str = "consumer-loan",
                   co_lenders: Sequence[tuple[str, int]] = (), national_id: str | None = None,
                   locale: str = "zh-CN", time_zone: str = "Asia/Shanghai",
                   account_ref: str | None = None) -> Delivery:
    """core.account-overdue.v1 for the account, its event time ``at`` (now by default); ``co_lenders`` as
    (tenant, share_bp) pairs; ``national_id`` sealed like the other contact points."""
    contact: dict[str, Any] = {"name": CIPHER.seal("测试客户", context=tenant),
                               "phone": CIPHER.seal("+8613900000001", context=tenant),
                               "time_zone": time_zone, "locale": locale}
    if national_id is not None:
        contact["national_id"] = CIPHER.seal(national_id, context=tenant)
    payload = AccountOverdueV1(
        tenant=tenant, account_id=account_id, customer_id=customer_id, product=product, currency=currency,
        outstanding_minor=max(overdue_minor * 4, 1) if outstanding_minor is None else outstanding_minor,
        overdue_minor=overdue_minor, days_past_due=days_past_due,
        due_date=date.today() - timedelta(days=days_past_due), credit_rating="C", contact=contact,
        co_lenders=[{"tenant": t, "share_bp": bp} for t, bp in co_lenders], account_ref=account_ref)
    return _delivery(topics.ACCOUNT_OVERDUE, payload, at)


def account_segmented(tenant: str, account_id: str, segment: str, *, customer_id: str = "C1",
                      dpd_bucket: str = "1-15", days_past_due: int = 9, overdue_minor: int = 100_000,
                      currency: str = "CNY", at: datetime | None = None) -> Delivery:
    """segmentation.account-segmented.v1 for the account, its event time ``at`` (now by default)."""
    payload = AccountSegmentedV1(
        tenant=tenant, account_id=account_id, customer_id=customer_id, segment=segment, dpd_bucket=dpd_bucket,
        days_past_due=days_past_due, due_date=date.today() - timedelta(days=days_past_due), currency=currency,
        overdue_minor=overdue_minor, outstanding_minor=overdue_minor * 4, reason="test",
        contact={"name": CIPHER.seal("测试客户", context=tenant),
                 "phone": CIPHER.seal("+8613900000001", context=tenant)})
    return _delivery(topics.ACCOUNT_SEGMENTED, payload, at)


def payment_received(tenant: str, account_id: str, payment_id: str, amount_minor: int, *, currency: str = "CNY",
                     customer_id: str = "C1", paid_at: datetime | None = None) -> Delivery:
    """core.payment-received.v1 for the account, booked at ``paid_at`` (now by default)."""
    payload = PaymentReceivedV1(tenant=tenant, account_id=account_id, customer_id=customer_id,
                                payment_id=payment_id, amount_minor=amount_minor, currency=currency,
                                paid_at=paid_at or datetime.now(UTC))
    return _delivery(topics.PAYMENT_RECEIVED, payload, None)


async def consume(sessions: Any, *deliveries: Delivery) -> None:
    """Hand the deliveries to the plans consumer's handlers, one committed batch (as the runner does)."""
    async with committed(sessions) as uow:
        by_topic: dict[str, list[Delivery]] = {}
        for d in deliveries:
            by_topic.setdefault(d.topic, []).append(d)
        handler_map = handlers.build_handlers(None)  # type: ignore[arg-type]
        for topic, batch in by_topic.items():
            await handler_map[topic](uow, batch)

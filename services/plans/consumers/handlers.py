"""Plans' consumer: payments are allocated to the account's agreed plan; paid off means completed."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.plans.db.models import AppliedPayment, Plan, PlanInstalment
from services.plans.domain.schedule import allocate
from shared.contracts import topics
from shared.contracts.events import Instalment, PaymentReceivedV1, PlanEventV1
from shared.kafka.consumer import Delivery, Handler
from shared.messaging import add_to_outbox, build_event
from shared.service import Runtime

SOURCE = "urn:gentle-collections:plans"


def plan_event(plan: Plan, instalments: list[PlanInstalment], kind: str) -> tuple[topics.Topic, object, str]:
    payload = PlanEventV1(
        tenant=plan.tenant, plan_id=plan.plan_id, account_id=plan.account_id, customer_id=plan.customer_id,
        kind=kind, currency=plan.currency, total_minor=plan.total_minor,  # type: ignore[arg-type]
        instalments=[Instalment(seq=i.seq, due_date=i.due_date, amount_minor=i.amount_minor) for i in instalments],
        occurred_at=datetime.now(UTC))
    event = build_event(topics.PLAN_EVENT, payload, tenant=plan.tenant, customer_id=plan.customer_id,
                        source=SOURCE, subject=plan.plan_id)
    return topics.PLAN_EVENT, event, plan.customer_id


async def on_payment_received(session: AsyncSession, deliveries: list[Delivery]) -> None:
    for d in deliveries:
        p: PaymentReceivedV1 = d.payload
        plan = (await session.execute(
            select(Plan).where(Plan.tenant == p.tenant, Plan.account_id == p.account_id,  # type: ignore[arg-type]
                               Plan.status == "agreed", Plan.currency == p.currency)  # type: ignore[arg-type]
            .with_for_update())).scalars().first()
        if plan is None:
            continue
        recorded = (await session.execute(
            insert(AppliedPayment).values(tenant=p.tenant, payment_id=p.payment_id, plan_id=plan.plan_id,
                                          amount_minor=p.amount_minor)
            .on_conflict_do_nothing().returning(AppliedPayment.payment_id))).first()  # type: ignore[arg-type]
        if recorded is None:
            continue
        instalments = list((await session.execute(
            select(PlanInstalment).where(PlanInstalment.plan_id == plan.plan_id)  # type: ignore[arg-type]
            .order_by(PlanInstalment.seq))).scalars().all())  # type: ignore[arg-type]
        owed = [(i.seq, i.amount_minor - i.paid_minor) for i in instalments]
        for seq, applied in allocate(p.amount_minor, owed):
            instalment = instalments[seq - 1]
            instalment.paid_minor += applied
        plan.paid_minor = min(plan.paid_minor + p.amount_minor, plan.total_minor)
        if plan.paid_minor >= plan.total_minor:
            plan.status = "completed"
            await add_to_outbox(session, [plan_event(plan, instalments, "completed")])  # type: ignore[list-item]
        await session.flush()
        await session.execute(update(Plan).where(Plan.plan_id == plan.plan_id)  # type: ignore[arg-type]
                              .values(updated_at=datetime.now(UTC)))


def build_handlers(runtime: Runtime) -> dict[str, Handler]:
    return {topics.PAYMENT_RECEIVED.name: on_payment_received}

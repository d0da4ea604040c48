"""Scheduler's consumers and its timer loop.

Steps are durable timers: a step due now is requested in the same transaction that creates it;
a deferred one waits in PostgreSQL until the timer loop claims it (FOR UPDATE SKIP LOCKED, so
replicas never claim the same step).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, case, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.scheduler.db.models import Treatment, TreatmentPayment, TreatmentStep
from services.scheduler.domain.timeline import contact_id_for, plan_step
from shared.contracts import CloudEvent, topics
from shared.contracts.events import (
    AccountSegmentedV1,
    ContactOutcomeV1,
    ContactRejectedV1,
    ContactRequestV1,
    PaymentReceivedV1,
    PlanEventV1,
)
from shared.db import table_of
from shared.kafka.consumer import Delivery, Handler
from shared.messaging import add_to_outbox, build_event
from shared.service import Runtime

SOURCE = "urn:gentle-collections:scheduler"
TREATMENTS = table_of(Treatment)
STEPS = table_of(TreatmentStep)
log = logging.getLogger(__name__)


def _request_event(step: Any, cause: CloudEvent | None) -> tuple[topics.Topic, CloudEvent, str]:
    request = ContactRequestV1(
        tenant=step.tenant, contact_id=step.contact_id, attempt=step.attempt, account_id=step.account_id,
        customer_id=step.customer_id, channel=step.channel, treatment_step=step.step, segment=step.segment,
        days_past_due=step.days_past_due, destination=step.destination_sealed, time_zone=step.time_zone,
        locale=step.locale, template_id=step.template_id, currency=step.currency,
        overdue_minor=step.overdue_minor, due_date=step.due_date, requested_at=datetime.now(UTC),
    )
    event = build_event(topics.CONTACT_REQUESTED, request, tenant=step.tenant, customer_id=step.customer_id,
                        source=SOURCE, cause=cause, subject=step.contact_id)
    return topics.CONTACT_REQUESTED, event, step.customer_id


async def on_account_segmented(session: AsyncSession, deliveries: list[Delivery]) -> None:
    """Keep the treatment current and open the step the timeline calls for."""
    latest: dict[tuple[str, str], tuple[AccountSegmentedV1, CloudEvent]] = {}
    for d in deliveries:
        latest[(d.payload.tenant, d.payload.account_id)] = (d.payload, d.event)
    rows = [{
        "tenant": p.tenant, "account_id": p.account_id, "customer_id": p.customer_id, "segment": p.segment.value,
        "days_past_due": p.days_past_due, "due_date": p.due_date, "currency": p.currency,
        "overdue_minor": p.overdue_minor, "status": "active", "status_reason": p.reason,
        "phone_sealed": p.contact.phone, "email_sealed": p.contact.email, "address_sealed": p.contact.address,
        "time_zone": p.contact.time_zone, "locale": p.contact.locale,
    } for p, _ in latest.values()]
    ex = insert(TREATMENTS).excluded
    # A plan pauses a treatment; new overdue data does not unpause it. A paid-off (stopped) account
    # becomes active again only for a new delinquency cycle (a later due date): a segmentation
    # event produced before the payment but consumed after it must not revive the treatment.
    stale = and_(TREATMENTS.c.status == "stopped", ex.due_date <= TREATMENTS.c.due_date)
    keep = or_(TREATMENTS.c.status == "paused", stale)
    upsert = insert(TREATMENTS).on_conflict_do_update(
        index_elements=["tenant", "account_id"],
        set_={c: case((stale, TREATMENTS.c[c]), else_=ex[c]) for c in rows[0]
              if c not in ("tenant", "account_id", "status", "status_reason")}
        | {"status": case((keep, TREATMENTS.c.status), else_="active"),
           "status_reason": case((keep, TREATMENTS.c.status_reason), else_=ex.status_reason),
           "updated_at": func.now()},
    ).returning(TREATMENTS.c.tenant, TREATMENTS.c.account_id, TREATMENTS.c.status)
    status = {(r.tenant, r.account_id): r.status for r in await session.execute(upsert, rows)}

    now = datetime.now(UTC)
    steps: list[dict[str, Any]] = []
    causes: dict[str, CloudEvent] = {}
    for (tenant, account_id), (p, event) in latest.items():
        plan = plan_step(segment=p.segment, days_past_due=p.days_past_due, has_phone=p.contact.phone is not None,
                         has_email=p.contact.email is not None, has_address=p.contact.address is not None)
        if plan is None or status[(tenant, account_id)] != "active":
            continue
        destination = {"sms": p.contact.phone, "call": p.contact.phone, "email": p.contact.email,
                       "field": p.contact.address}[plan.channel.value]
        contact_id = contact_id_for(tenant=tenant, account_id=account_id, step=plan.step, due_date=p.due_date)
        causes[contact_id] = event
        steps.append({
            "contact_id": contact_id, "tenant": tenant, "account_id": account_id, "customer_id": p.customer_id,
            "step": plan.step, "channel": plan.channel.value, "template_id": plan.template_id,
            "segment": p.segment.value, "days_past_due": p.days_past_due, "due_date": p.due_date,
            "currency": p.currency, "overdue_minor": p.overdue_minor, "destination_sealed": destination,
            "time_zone": p.contact.time_zone, "locale": p.contact.locale, "status": "requested", "attempt": 1,
            "last_reason": "", "due_at": now,
        })
    if not steps:
        return
    # A step cancelled by a pause is reopened when the treatment is active again; any other existing
    # step (requested, done, ...) is left alone, so a replay never makes a second contact.
    stmt = insert(STEPS)
    reopen = stmt.on_conflict_do_update(
        index_elements=["contact_id"],
        set_={"status": "requested", "attempt": STEPS.c.attempt + 1, "due_at": stmt.excluded.due_at,
              "overdue_minor": stmt.excluded.overdue_minor, "days_past_due": stmt.excluded.days_past_due,
              "last_reason": "reopened", "updated_at": func.now()},
        where=STEPS.c.status == "cancelled",
    ).returning(*STEPS.c)
    created = (await session.execute(reopen, steps)).all()
    await add_to_outbox(session, [_request_event(s, causes[s.contact_id]) for s in created])


_REJECT = (
    update(STEPS)
    .where(STEPS.c.contact_id == bindparam("b_contact_id"), STEPS.c.attempt == bindparam("b_attempt"),
           STEPS.c.status == "requested")
    .values(status=bindparam("b_status"), due_at=bindparam("b_due_at"), attempt=STEPS.c.attempt + bindparam("b_inc"),
            last_reason=bindparam("b_reason"), updated_at=func.now())
)
_OUTCOME = (
    update(STEPS)
    # or_ rather than in_(): an expanding IN cannot be used with executemany
    .where(STEPS.c.contact_id == bindparam("b_contact_id"),
           or_(STEPS.c.status == "requested", STEPS.c.status == "done", STEPS.c.status == "failed"))
    .values(status=bindparam("b_status"), last_reason=bindparam("b_reason"), updated_at=func.now())
)


async def on_contact_rejected(session: AsyncSession, deliveries: list[Delivery]) -> None:
    """Deferred: back to pending until retry_at (the timer picks it up). Blocked: closed."""
    now = datetime.now(UTC)
    params = []
    for d in deliveries:
        p: ContactRejectedV1 = d.payload
        params.append({"b_contact_id": p.contact_id, "b_attempt": p.attempt,
                       "b_status": "pending" if p.retry_at else "blocked", "b_due_at": p.retry_at or now,
                       "b_inc": 1 if p.retry_at else 0, "b_reason": f"{p.rule_id}: {p.reason}"})
    await session.execute(_REJECT, params)


async def on_contact_outcome(session: AsyncSession, deliveries: list[Delivery]) -> None:
    """Close the step: done when sent or handed to an agent; failed otherwise."""
    params = []
    for d in deliveries:
        p: ContactOutcomeV1 = d.payload
        params.append({"b_contact_id": p.contact_id, "b_reason": f"outcome: {p.outcome}",
                       "b_status": "failed" if p.outcome in ("failed", "unknown") else "done"})
    await session.execute(_OUTCOME, params)


async def _set_treatment(session: AsyncSession, tenant: str, account_id: str, status: str, reason: str) -> None:
    await session.execute(
        update(Treatment).where(Treatment.tenant == tenant, Treatment.account_id == account_id)  # type: ignore[arg-type]
        .values(status=status, status_reason=reason))
    if status != "active":
        await session.execute(
            update(TreatmentStep)
            # 'requested' too: a deferral coming back later must not revive it as 'pending'
            .where(TreatmentStep.tenant == tenant, TreatmentStep.account_id == account_id,  # type: ignore[arg-type]
                   TreatmentStep.status.in_(("pending", "requested")))  # type: ignore[attr-defined]
            .values(status="cancelled", last_reason=reason))


async def on_plan_event(session: AsyncSession, deliveries: list[Delivery]) -> None:
    """An agreed plan pauses the treatment; a cancelled or broken one resumes it."""
    for d in deliveries:
        p: PlanEventV1 = d.payload
        if p.kind == "agreed":
            await _set_treatment(session, p.tenant, p.account_id, "paused", f"plan {p.plan_id} agreed")
        elif p.kind in ("cancelled", "broken"):
            await session.execute(
                update(Treatment)
                .where(Treatment.tenant == p.tenant, Treatment.account_id == p.account_id,  # type: ignore[arg-type]
                       Treatment.status == "paused")  # type: ignore[arg-type]
                .values(status="active", status_reason=f"plan {p.plan_id} {p.kind}"))
        else:
            await _set_treatment(session, p.tenant, p.account_id, "stopped", f"plan {p.plan_id} completed")


async def on_payment_received(session: AsyncSession, deliveries: list[Delivery]) -> None:
    """A payment that clears the overdue amount stops the treatment."""
    for d in deliveries:
        p: PaymentReceivedV1 = d.payload
        first_time = (await session.execute(
            insert(table_of(TreatmentPayment)).on_conflict_do_nothing()
            .values(tenant=p.tenant, payment_id=p.payment_id, account_id=p.account_id, amount_minor=p.amount_minor)
            .returning(table_of(TreatmentPayment).c.payment_id))).first()
        if first_time is None:
            continue  # the same payment under another event id
        row = (await session.execute(
            update(Treatment)
            .where(Treatment.tenant == p.tenant, Treatment.account_id == p.account_id,  # type: ignore[arg-type]
                   Treatment.currency == p.currency)  # type: ignore[arg-type]
            .values(overdue_minor=func.greatest(Treatment.overdue_minor - p.amount_minor, 0))
            .returning(Treatment.overdue_minor)
        )).first()
        if row is not None and row.overdue_minor == 0:
            await _set_treatment(session, p.tenant, p.account_id, "stopped", f"paid in full by {p.payment_id}")


async def request_due_steps(runtime: Runtime, *, limit: int = 500) -> int:
    """Claim due pending steps of active treatments and emit their contact requests."""
    async with runtime.sessions() as session, session.begin():
        due: Sequence[Any] = (await session.execute(
            select(TreatmentStep, Treatment.overdue_minor.label("current_overdue"),  # type: ignore[attr-defined]
                   Treatment.days_past_due.label("current_dpd"))  # type: ignore[attr-defined]
            .join(Treatment, and_(Treatment.tenant == TreatmentStep.tenant,  # type: ignore[arg-type]
                                  Treatment.account_id == TreatmentStep.account_id))  # type: ignore[arg-type]
            .where(TreatmentStep.status == "pending", TreatmentStep.due_at <= func.now(),  # type: ignore[arg-type]
                   Treatment.status == "active")  # type: ignore[arg-type]
            .order_by(TreatmentStep.due_at)  # type: ignore[arg-type]
            .limit(limit)
            .with_for_update(of=TreatmentStep, skip_locked=True)  # type: ignore[arg-type]
        )).all()
        if not due:
            return 0
        steps = []
        for step, overdue, dpd in due:
            # a deferred contact states today's amount and DPD, not those of when it was planned
            step.overdue_minor, step.days_past_due, step.status = overdue, dpd, "requested"
            steps.append(step)
        await add_to_outbox(session, [_request_event(s, None) for s in steps])
    runtime.relay.wake()
    return len(due)


async def timer_loop(runtime: Runtime) -> None:
    """Durable timers: poll for due steps; a crash loses nothing, the rows are still due."""
    interval = getattr(runtime.settings, "timer_interval_s", 1.0)
    while not runtime.stopping.is_set():
        try:
            while await request_due_steps(runtime) > 0:
                pass
        except Exception:
            log.exception("timer pass failed")
        await asyncio.sleep(interval)


def build_handlers(runtime: Runtime) -> dict[str, Handler]:
    return {
        topics.ACCOUNT_SEGMENTED.name: on_account_segmented,
        topics.CONTACT_REJECTED.name: on_contact_rejected,
        topics.CONTACT_OUTCOME.name: on_contact_outcome,
        topics.PLAN_EVENT.name: on_plan_event,
        topics.PAYMENT_RECEIVED.name: on_payment_received,
    }

"""Scheduler's use cases: what happens when an account is segmented, a contact is rejected or has an
outcome, a plan changes, a payment arrives, and a deferred step falls due.

Each is a keyword-only async function taking the unit of work; statuses come from the state machines
in ``domain/states.py``, the next step from ``domain/timeline.py``; ``db/repository.py`` stores them.
Steps are durable timers: a step due now is requested in the transaction that creates it; a deferred
one waits in PostgreSQL until the timer worker claims it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from services.scheduler.db import repository as repo
from services.scheduler.db.models import Treatment, TreatmentStep
from services.scheduler.domain.states import (
    STEP,
    TREATMENT,
    StepEvent,
    StepStatus,
    TreatmentEvent,
    TreatmentStatus,
    outcome_event,
    overdue_event,
    plan_event,
)
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
from shared.domain import IllegalTransition, NotFound
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)
CANCELLABLE = tuple(s.value for s in StepStatus if STEP.allows(s, StepEvent.CANCELLED))


def _by_account(p: PlanEventV1 | PaymentReceivedV1) -> tuple[str, str]:
    return p.tenant, p.account_id


def _emit_request(uow: UnitOfWork, step: Mapping[str, Any], cause: CloudEvent | None) -> None:
    request = ContactRequestV1(
        tenant=step["tenant"], contact_id=step["contact_id"], attempt=step["attempt"], account_id=step["account_id"],
        customer_id=step["customer_id"], channel=step["channel"], treatment_step=step["step"],
        segment=step["segment"], days_past_due=step["days_past_due"], destination=step["destination_sealed"],
        time_zone=step["time_zone"], locale=step["locale"], template_id=step["template_id"],
        currency=step["currency"], overdue_minor=step["overdue_minor"], due_date=step["due_date"],
        requested_at=datetime.now(UTC))
    uow.emit(topics.CONTACT_REQUESTED, request, cause=cause, subject=step["contact_id"])


async def record_segmented(uow: UnitOfWork, *, segmented: Sequence[tuple[AccountSegmentedV1, CloudEvent]]) -> None:
    """Keep each treatment current and open the step the timeline calls for (the last fact per account
    in the batch wins)."""
    latest = {(p.tenant, p.account_id): (p, event) for p, event in segmented}
    stored = await repo.lock_treatments(uow.session, latest.keys())
    rows: list[dict[str, Any]] = []
    active: list[tuple[AccountSegmentedV1, CloudEvent]] = []
    for key, (p, event) in latest.items():
        current = stored.get(key)
        if current is None:
            status, reason = TreatmentStatus.ACTIVE, p.reason
        else:
            before = TreatmentStatus(current.status)
            try:
                status = TREATMENT.apply(before, overdue_event(stored_due_date=current.due_date,
                                                               incoming_due_date=p.due_date))
            except IllegalTransition:
                # a fact produced before the payment that stopped this cycle: it must not revive it
                continue
            reason = current.status_reason if status is TreatmentStatus.PAUSED else p.reason
        rows.append({
            "tenant": p.tenant, "account_id": p.account_id, "customer_id": p.customer_id,
            "segment": p.segment.value, "days_past_due": p.days_past_due, "due_date": p.due_date,
            "currency": p.currency, "overdue_minor": p.overdue_minor, "status": status.value,
            "status_reason": reason, "phone_sealed": p.contact.phone, "email_sealed": p.contact.email,
            "address_sealed": p.contact.address, "time_zone": p.contact.time_zone, "locale": p.contact.locale})
        if status is TreatmentStatus.ACTIVE:
            active.append((p, event))
    await repo.save_treatments(uow.session, rows)
    await _open_steps(uow, active)


async def _open_steps(uow: UnitOfWork, accounts: Sequence[tuple[AccountSegmentedV1, CloudEvent]]) -> None:
    now = datetime.now(UTC)
    planned: dict[str, tuple[dict[str, Any], CloudEvent]] = {}
    for p, event in accounts:
        plan = plan_step(segment=p.segment, days_past_due=p.days_past_due, has_phone=p.contact.phone is not None,
                         has_email=p.contact.email is not None, has_address=p.contact.address is not None)
        if plan is None:
            continue
        destination = {"sms": p.contact.phone, "call": p.contact.phone, "email": p.contact.email,
                       "field": p.contact.address}[plan.channel.value]
        contact_id = contact_id_for(tenant=p.tenant, account_id=p.account_id, step=plan.step, due_date=p.due_date)
        planned[contact_id] = ({
            "contact_id": contact_id, "tenant": p.tenant, "account_id": p.account_id, "customer_id": p.customer_id,
            "step": plan.step, "channel": plan.channel.value, "template_id": plan.template_id,
            "segment": p.segment.value, "days_past_due": p.days_past_due, "due_date": p.due_date,
            "currency": p.currency, "overdue_minor": p.overdue_minor, "destination_sealed": destination,
            "time_zone": p.contact.time_zone, "locale": p.contact.locale,
            "status": STEP.apply(StepStatus.PENDING, StepEvent.PLANNED).value, "attempt": 1,
            "last_reason": "", "due_at": now}, event)
    existing = await repo.lock_steps(uow.session, planned)
    created, reopened = [], []
    for contact_id, (step, event) in planned.items():
        old = existing.get(contact_id)
        if old is None:
            created.append(step)
            _emit_request(uow, step, event)
            continue
        # A step cancelled by a pause is reopened; any other (requested, done, ...) is left alone, so
        # a replay never makes a second contact.
        if not STEP.allows(StepStatus(old["status"]), StepEvent.REOPENED):
            continue
        old.update(status=STEP.apply(StepStatus(old["status"]), StepEvent.REOPENED).value,
                   attempt=old["attempt"] + 1, due_at=now, overdue_minor=step["overdue_minor"],
                   days_past_due=step["days_past_due"], last_reason="reopened")
        reopened.append(old)
        _emit_request(uow, old, event)
    await repo.insert_steps(uow.session, created)
    await repo.update_steps(uow.session, reopened)


async def record_rejections(uow: UnitOfWork, *, rejections: Sequence[ContactRejectedV1]) -> None:
    """Deferred: back to pending until retry_at (the timer picks it up). Blocked: closed."""
    steps = await repo.lock_steps(uow.session, (r.contact_id for r in rejections))
    now = datetime.now(UTC)
    changed: dict[str, dict[str, Any]] = {}
    for r in rejections:
        step = steps.get(r.contact_id)
        if step is None or step["attempt"] != r.attempt:
            continue  # a verdict on an attempt that is no longer current
        event = StepEvent.DEFERRED if r.retry_at else StepEvent.BLOCKED
        try:
            status = STEP.apply(StepStatus(step["status"]), event)
        except IllegalTransition:
            continue
        step.update(status=status.value, due_at=r.retry_at or now, attempt=step["attempt"] + (1 if r.retry_at else 0),
                    last_reason=f"{r.rule_id}: {r.reason}")
        changed[r.contact_id] = step
    await repo.update_steps(uow.session, list(changed.values()))


async def record_outcomes(uow: UnitOfWork, *, outcomes: Sequence[ContactOutcomeV1]) -> None:
    """Close the step: done when sent or handed to an agent; failed otherwise."""
    steps = await repo.lock_steps(uow.session, (o.contact_id for o in outcomes))
    changed: dict[str, dict[str, Any]] = {}
    for o in outcomes:
        step = steps.get(o.contact_id)
        if step is None:
            continue
        try:
            status = STEP.apply(StepStatus(step["status"]), outcome_event(o.outcome))
        except IllegalTransition:
            continue
        step.update(status=status.value, last_reason=f"outcome: {o.outcome}")
        changed[o.contact_id] = step
    await repo.update_steps(uow.session, list(changed.values()))


async def _transition(uow: UnitOfWork, treatment: Any, event: TreatmentEvent, reason: str) -> None:
    """Apply ``event`` to a stored treatment; a treatment that is no longer active has its open steps
    cancelled, so a deferral coming back later cannot revive one."""
    before = TreatmentStatus(treatment.status)
    try:
        after = TREATMENT.apply(before, event)
    except IllegalTransition:
        log.info("treatment event not applicable", extra={"event": event.value, "status": before.value})
        after = None
    if after is None or (after is before and after is TreatmentStatus.ACTIVE):
        return
    await repo.set_treatment_status(uow.session, tenant=treatment.tenant, account_id=treatment.account_id,
                                    status=after.value, reason=reason)
    if after is not TreatmentStatus.ACTIVE:
        await repo.cancel_steps(uow.session, tenant=treatment.tenant, account_id=treatment.account_id,
                                statuses=CANCELLABLE, status=StepStatus.CANCELLED.value, reason=reason)


async def apply_plan_events(uow: UnitOfWork, *, plan_events: Sequence[PlanEventV1]) -> None:
    """An agreed plan pauses the treatment; a cancelled or broken one resumes it; completed stops it."""
    for p in sorted(plan_events, key=_by_account):  # same lock order everywhere; each account's order kept
        stored = (await repo.lock_treatments(uow.session, [(p.tenant, p.account_id)])).get((p.tenant, p.account_id))
        if stored is None:
            continue
        await _transition(uow, stored, plan_event(p.kind), f"plan {p.plan_id} {p.kind}")


async def apply_payments(uow: UnitOfWork, *, payments: Sequence[PaymentReceivedV1]) -> None:
    """A payment that clears the overdue amount stops the treatment; each payment counts once."""
    for p in sorted(payments, key=_by_account):  # same lock order everywhere; each account's order kept
        if not await repo.record_payment(uow.session, tenant=p.tenant, payment_id=p.payment_id,
                                         account_id=p.account_id, amount_minor=p.amount_minor):
            continue
        stored = (await repo.lock_treatments(uow.session, [(p.tenant, p.account_id)])).get((p.tenant, p.account_id))
        if stored is None or stored.currency != p.currency:
            continue
        remaining = max(stored.overdue_minor - p.amount_minor, 0)
        await repo.set_overdue(uow.session, tenant=p.tenant, account_id=p.account_id, overdue_minor=remaining)
        if remaining == 0:
            await _transition(uow, stored, TreatmentEvent.PAID_IN_FULL, f"paid in full by {p.payment_id}")


async def request_due_steps(uow: UnitOfWork, *, limit: int = 500) -> int:
    """Claim due pending steps of active treatments and emit their contact requests."""
    due = await repo.claim_due_steps(uow.session, limit=limit)
    for step, overdue, dpd in due:
        step.status = STEP.apply(StepStatus(step.status), StepEvent.DUE).value
        # a deferred contact states today's amount and DPD, not those of when it was planned
        step.overdue_minor, step.days_past_due = overdue, dpd
        _emit_request(uow, step.model_dump(), None)
    return len(due)


async def get_treatment(session: Any, *, tenant: str, account_id: str) -> tuple[Treatment, list[TreatmentStep]]:
    """The account's treatment and its steps, in the caller's tenant only."""
    treatment = await repo.get_treatment(session, tenant=tenant, account_id=account_id)
    if treatment is None:
        raise NotFound(f"No treatment for account {account_id!r} in your tenant.")
    return treatment, await repo.list_steps(session, tenant=tenant, account_id=account_id)

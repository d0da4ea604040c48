"""Scheduler's use cases: what happens when an account is segmented, a contact is rejected or has an
outcome, a plan changes, a payment arrives, and a deferred step falls due.

Each is a keyword-only async function taking the unit of work. Every fact is kept whatever order it
arrives in (the newest overdue snapshot, every payment, each plan's last word, each contact's newest
outcome); the treatment's status is derived from them (``domain/standing.py``), a step's from the step
machine (``domain/states.py``), the next step from ``domain/timeline.py``; ``db/repository.py`` stores them.
Steps are durable timers: a step due now is requested in the transaction that creates it; a deferred
one waits in PostgreSQL until the timer worker claims it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.scheduler.db import repository as repo
from services.scheduler.db.models import Treatment, TreatmentStep
from services.scheduler.domain import promises
from services.scheduler.domain.standing import (
    PaymentFact,
    SnapshotTime,
    is_newer_snapshot,
    is_open,
    outcome_supersedes,
    overdue_now,
    plan_supersedes,
    standing,
)
from services.scheduler.domain.states import STEP, StepEvent, StepStatus, TreatmentStatus, outcome_event
from services.scheduler.domain.strategies.document import MAX_RETRIES
from services.scheduler.domain.strategies.interpreter import Account, Planned, StepName, after_outcome, step_for
from services.scheduler.domain.timeline import contact_id_for
from services.scheduler.service import strategies
from shared import metrics
from shared.contracts import CloudEvent, topics
from shared.contracts.events import (
    AccountSegmentedV1,
    Channel,
    ContactOutcomeV1,
    ContactRejectedV1,
    ContactRequestV1,
    PaymentReceivedV1,
    PlanEventV1,
    PromiseEventV1,
)
from shared.db import lock_account_keys
from shared.domain import IllegalTransition, NotFound
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)
CANCELLABLE = tuple(s.value for s in StepStatus if STEP.allows(s, StepEvent.CANCELLED))
AccountKey = tuple[str, str]
Cause = CloudEvent | None


def _emit_request(uow: UnitOfWork, step: Mapping[str, Any], cause: Cause) -> None:
    request = ContactRequestV1(
        tenant=step["tenant"], contact_id=step["contact_id"], attempt=step["attempt"], account_id=step["account_id"],
        customer_id=step["customer_id"], channel=step["channel"], treatment_step=step["step"],
        segment=step["segment"], days_past_due=step["days_past_due"], destination=step["destination_sealed"],
        time_zone=step["time_zone"], locale=step["locale"], template_id=step["template_id"],
        currency=step["currency"], overdue_minor=step["overdue_minor"], due_date=step["due_date"],
        requested_at=datetime.now(UTC), account_ref=step["account_ref"], borrower_key=step["borrower_key"])
    uow.emit(topics.CONTACT_REQUESTED, request, cause=cause, subject=step["contact_id"])


def _snapshot_time(row: Mapping[str, Any]) -> SnapshotTime:
    return SnapshotTime(row["as_of"], row["due_date"], row["days_past_due"], row["reported_overdue_minor"])


async def _standings(uow: UnitOfWork, treatments: Mapping[AccountKey, dict[str, Any]]) -> dict[AccountKey, int]:
    """Derive each treatment's status and amount overdue from the payments and plans kept for it, in place;
    returns how many plans each account broke in its current delinquency cycle (a strategy's escalation reads it)."""
    payments = await repo.payments_of(uow.session, treatments.keys())
    plans = await repo.plans_of(uow.session, treatments.keys())
    promised = await repo.promises_of(uow.session, treatments.keys())
    now = datetime.now(UTC)
    broken: dict[AccountKey, int] = {}
    retimed: list[tuple[str, str, datetime]] = []
    for key, t in treatments.items():
        facts = [PaymentFact(p.amount_minor, p.currency, p.paid_at) for p in payments.get(key, ())]
        # each promise with its deadline in the customer's zone (the timer moves there once the treatment is known)
        kept = [(p, _promise(p, t["time_zone"])) for p in promised.get(key, ())]
        retimed += [(p.tenant, p.promise_id, d.deadline) for p, d in kept
                    if p.checked_at is None and d.deadline != p.check_at]
        judged = {p.promise_id: (p, promises.judged(d, verdict=p.verdict, payments=facts, now=now)) for p, d in kept
                  if p.currency == t["currency"] and promises.in_cycle(
                      cycle_due_date=p.cycle_due_date, made_at=p.made_at, due_date=t["due_date"])}
        promise_status = {pid: (p, state) for pid, (p, state) in judged.items() if state is not None}  # not cancelled
        broken_plans = [p for p in plans.get(key, ()) if p.kind == "broken" and p.occurred_at.date() >= t["due_date"]]
        broken[key] = len(broken_plans) + sum(1 for _, state in promise_status.values() if state == "broken")
        overdue = overdue_now(reported_minor=t["reported_overdue_minor"], currency=t["currency"], as_of=t["as_of"],
                              payments=facts)
        result = standing(overdue_minor=overdue, open_plans=[p.plan_id for p in plans.get(key, ()) if is_open(p.kind)],
                          active_reason=t["segment_reason"],
                          open_promises=[f"promise to pay {p.amount_minor} {p.currency} (minor units) by {p.due_on}"
                                         for p, state in promise_status.values() if state == "open"])
        t.update(status=result.status.value, status_reason=result.reason, overdue_minor=result.overdue_minor)
    await repo.set_promise_checks(uow.session, retimed)
    return broken


async def _follow(uow: UnitOfWork, treatments: Sequence[Mapping[str, Any]], causes: Mapping[AccountKey, Cause],
                  broken: Mapping[AccountKey, int]) -> None:
    """Make the steps follow each treatment's status: open steps are cancelled when it is not active; the
    step its snapshot calls for is opened (or reopened) when it is."""
    stopped = [((t["tenant"], t["account_id"]), t["status_reason"]) for t in treatments
               if t["status"] != TreatmentStatus.ACTIVE.value]
    await repo.cancel_steps(uow.session, stopped, statuses=CANCELLABLE, status=StepStatus.CANCELLED.value)
    await _open_steps(uow, [t for t in treatments if t["status"] == TreatmentStatus.ACTIVE.value], causes, broken)


async def record_segmented(uow: UnitOfWork, *, segmented: Sequence[tuple[AccountSegmentedV1, CloudEvent]]) -> None:
    """Keep the newest overdue snapshot of each account (by its time, in the batch and against what is
    stored), derive the treatment from it and the payments and plans kept, and open the step it calls for."""
    latest: dict[AccountKey, dict[str, Any]] = {}
    causes: dict[AccountKey, Cause] = {}
    for p, event in segmented:
        key = (p.tenant, p.account_id)
        row = {
            "tenant": p.tenant, "account_id": p.account_id, "customer_id": p.customer_id,
            "segment": p.segment.value, "days_past_due": p.days_past_due, "due_date": p.due_date,
            "currency": p.currency, "reported_overdue_minor": p.overdue_minor, "overdue_minor": p.overdue_minor,
            "as_of": p.as_of or event.time, "segment_reason": p.reason, "account_ref": p.account_ref,
            "borrower_key": p.borrower_key,
            "status": TreatmentStatus.ACTIVE.value, "status_reason": p.reason,
            "phone_sealed": p.contact.phone, "email_sealed": p.contact.email, "address_sealed": p.contact.address,
            "time_zone": p.contact.time_zone, "locale": p.contact.locale}
        if key not in latest or is_newer_snapshot(_snapshot_time(row), _snapshot_time(latest[key])):
            latest[key], causes[key] = row, event
    await lock_account_keys(uow.session, latest.keys())
    stored = await repo.lock_treatments(uow.session, latest.keys())
    fresh = {key: row for key, row in latest.items()
             if key not in stored or is_newer_snapshot(_snapshot_time(row), _snapshot_time(stored[key]._mapping))}
    broken = await _standings(uow, fresh)
    followed = await strategies.current(uow.session, {t for t, _ in fresh})
    for t in fresh.values():
        arm, strategy, experiment = followed[t["tenant"]].follow(borrower=_borrower(t), segment=t["segment"])
        t.update(arm=arm, strategy=strategy.ref, experiment=experiment)
    await repo.save_treatments(uow.session, list(fresh.values()))
    await _follow(uow, list(fresh.values()), causes, broken)


async def _resettle(uow: UnitOfWork, keys: Collection[AccountKey], causes: Mapping[AccountKey, Cause],
                    replan: Collection[AccountKey] = ()) -> None:
    """Derive again the treatments of these accounts (those that exist) after a payment or a plan event; the
    accounts in ``replan`` (a plan broken: a strategy may escalate) are planned again when active even if their
    status did not change."""
    stored = {key: dict(row._mapping) for key, row in (await repo.lock_treatments(uow.session, keys)).items()}
    before = {key: (t["status"], t["overdue_minor"], t["status_reason"]) for key, t in stored.items()}
    broken = await _standings(uow, stored)
    changed = [t for key, t in stored.items() if (t["status"], t["overdue_minor"], t["status_reason"]) != before[key]]
    await repo.set_standings(uow.session, changed)
    # steps follow a change of status (an unchanged active treatment already has its step), or a broken plan
    await _follow(uow, [t for key, t in stored.items() if t["status"] != before[key][0] or key in replan], causes,
                  broken)


def _promise(row: Any, time_zone: str) -> promises.Promise:
    """A kept promise; one recorded in plans keeps the deadline plans gave it."""
    return promises.Promise(row.promise_id, row.amount_minor, row.currency, row.due_on, row.made_at,
                            row.deadline or promises.deadline(due_on=row.due_on, grace_days=row.grace_days,
                                                              time_zone=time_zone))


def _borrower(t: Mapping[str, Any]) -> str:
    return strategies.borrower_of(borrower_key=t["borrower_key"], customer_id=t["customer_id"])


def _account(t: Mapping[str, Any], broken: int) -> Account:
    return Account(segment=t["segment"], days_past_due=t["days_past_due"], due_date=t["due_date"],
                   overdue_minor=t["overdue_minor"], time_zone=t["time_zone"], has_phone=t["phone_sealed"] is not None,
                   has_email=t["email_sealed"] is not None, has_address=t["address_sealed"] is not None,
                   broken_promises=broken, active=t["status"] == TreatmentStatus.ACTIVE.value)


_DESTINATION = {"sms": "phone_sealed", "call": "phone_sealed", "email": "email_sealed", "field": "address_sealed"}


def _step_row(t: Mapping[str, Any], plan: Planned, now: datetime, *, strategy: str, arm: str,
              experiment: str | None) -> dict[str, Any]:
    """A new step for the treatment: requested at once when it is due now, else pending (a durable timer)."""
    status = STEP.apply(StepStatus.PENDING, StepEvent.PLANNED) if plan.due_at <= now else StepStatus.PENDING
    return {
        "contact_id": contact_id_for(tenant=t["tenant"], account_id=t["account_id"], step=plan.step,
                                     due_date=t["due_date"]),
        "tenant": t["tenant"], "account_id": t["account_id"], "customer_id": t["customer_id"], "step": plan.step,
        "channel": plan.channel.value, "template_id": plan.template, "segment": t["segment"],
        "days_past_due": t["days_past_due"], "due_date": t["due_date"], "currency": t["currency"],
        "overdue_minor": t["overdue_minor"], "destination_sealed": t[_DESTINATION[plan.channel.value]],
        "time_zone": t["time_zone"], "locale": t["locale"], "account_ref": t["account_ref"],
        "borrower_key": t["borrower_key"], "status": status.value, "attempt": 1, "last_reason": plan.reason[:500],
        "outcome": None, "outcome_at": None, "due_at": plan.due_at, "strategy": strategy, "arm": arm,
        "experiment": experiment}


async def _open_steps(uow: UnitOfWork, treatments: Sequence[Mapping[str, Any]],
                      causes: Mapping[AccountKey, Cause], broken: Mapping[AccountKey, int]) -> None:
    now = datetime.now(UTC)
    followed = await strategies.current(uow.session, {t["tenant"] for t in treatments}) if treatments else {}
    planned: dict[str, tuple[dict[str, Any], Cause]] = {}
    for t in treatments:
        key = (t["tenant"], t["account_id"])
        arm, strategy, experiment = followed[t["tenant"]].follow(borrower=_borrower(t), segment=t["segment"])
        plan = step_for(strategy, _account(t, broken.get(key, 0)), now=now)
        if plan is not None:
            step = _step_row(t, plan, now, strategy=strategy.ref, arm=arm, experiment=experiment)
            planned[step["contact_id"]] = (step, causes.get(key))
    if not planned:
        return
    existing = await repo.lock_steps(uow.session, planned)
    new = [contact_id for contact_id in planned if contact_id not in existing]
    outcomes = await repo.lock_outcomes(uow.session, new) if new else {}
    created, reopened = [], []
    for contact_id, (step, cause) in planned.items():
        old = existing.get(contact_id)
        if old is None:
            known = outcomes.get(contact_id)
            if known is not None:
                # the contact was made and its outcome reported before this step was known here: record
                # it, never make the contact a second time
                made = STEP.apply(StepStatus.PENDING, StepEvent.PLANNED)
                step.update(status=STEP.apply(made, outcome_event(known.outcome)).value,
                            last_reason=f"outcome: {known.outcome}", outcome=known.outcome,
                            outcome_at=known.occurred_at)
            elif step["status"] == StepStatus.REQUESTED.value:
                _emit_request(uow, step, cause)
            created.append(step)
            continue
        # A step cancelled by a pause is reopened; any other (requested, done, ...) is left alone, so
        # a replay never makes a second contact.
        if not STEP.allows(StepStatus(old["status"]), StepEvent.REOPENED):
            continue
        old.update(status=STEP.apply(StepStatus(old["status"]), StepEvent.REOPENED).value,
                   attempt=old["attempt"] + 1, due_at=now, overdue_minor=step["overdue_minor"],
                   days_past_due=step["days_past_due"], last_reason="reopened")
        reopened.append(old)
        _emit_request(uow, old, cause)
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


async def record_outcomes(uow: UnitOfWork, *, outcomes: Sequence[ContactOutcomeV1],
                          promise_grace_days: int = 1) -> None:
    """Keep each contact's newest outcome (by when it happened, whatever the arrival order) on its step and
    close the step: done when sent, handed to an agent or a call reached the customer (connected, right-party
    contact), failed otherwise (a call with no answer, busy, voicemail: ``domain/states.py`` ``outcome_event``).
    An outcome for a step not known here yet is kept aside and applied when the step appears."""
    newest: dict[str, ContactOutcomeV1] = {}
    for o in outcomes:
        held = newest.get(o.contact_id)
        if outcome_supersedes(stored=(held.outcome, held.occurred_at) if held else None,
                              incoming=(o.outcome, o.occurred_at)):
            newest[o.contact_id] = o
    steps = await repo.lock_steps(uow.session, newest)
    changed: list[dict[str, Any]] = []
    corrected: list[dict[str, Any]] = []  # failed before, reached the customer after all
    for contact_id, step in list(steps.items()):
        o = newest[contact_id]
        if step["tenant"] != o.tenant:  # another tenant's contact id: never applied (nor kept aside)
            log.warning("contact outcome names another tenant's contact", extra={"tenant": o.tenant})
            del steps[contact_id], newest[contact_id]
            continue
        kept = (step["outcome"], step["outcome_at"]) if step["outcome"] else None
        if not outcome_supersedes(stored=kept, incoming=(o.outcome, o.occurred_at)):
            continue
        try:
            status = STEP.apply(StepStatus(step["status"]), outcome_event(o.outcome))
        except IllegalTransition:
            continue
        if step["status"] == StepStatus.FAILED.value and status is StepStatus.DONE:
            corrected.append(step)
        step.update(status=status.value, last_reason=f"outcome: {o.outcome}", outcome=o.outcome,
                    outcome_at=o.occurred_at)
        changed.append(step)
    await repo.update_steps(uow.session, changed)
    # a promise made in this batch pauses its treatment before any failure of the batch is reacted to
    await _record_promises(uow, [o for o in outcomes if o.promise is not None and o.contact_id in newest],
                           grace_days=promise_grace_days, steps=steps)
    await _react(uow, [s for s in changed if s["status"] == StepStatus.FAILED.value], corrected)
    unknown = {cid: o for cid, o in newest.items() if cid not in steps}
    if unknown:
        parked = await repo.lock_outcomes(uow.session, unknown)
        await repo.save_outcomes(uow.session, [
            {"contact_id": cid, "tenant": o.tenant, "outcome": o.outcome, "occurred_at": o.occurred_at}
            for cid, o in unknown.items()
            if outcome_supersedes(stored=(parked[cid].outcome, parked[cid].occurred_at) if cid in parked else None,
                                  incoming=(o.outcome, o.occurred_at))])


async def _record_promises(uow: UnitOfWork, outcomes: Sequence[ContactOutcomeV1], *, grace_days: int,
                           steps: Mapping[str, Mapping[str, Any]]) -> None:
    """Keep each promise to pay made on a call (one per contact: the latest report, ties by amount then day) with
    its grace and the delinquency cycle of its call (the step's due date, when the step is known), then derive the
    treatments again: an open promise pauses one. A promise due before it was made or more than
    ``promises.MAX_DAYS`` after is not kept (logged): the call's outcome still counts."""
    usable = []
    for o in _latest_per_contact(outcomes):
        assert o.promise is not None
        if promises.usable(due_on=o.promise.due_on, made_at=o.occurred_at):
            usable.append(o)
        else:
            log.warning("a promise to pay due outside the days it may cover is not kept", extra={
                "tenant": o.tenant, "contact_id": o.contact_id, "due_on": str(o.promise.due_on)})
    if not usable:
        return
    keys = {(o.tenant, o.account_id) for o in usable}
    await lock_account_keys(uow.session, keys)
    await repo.save_promises(uow.session, [
        {"tenant": o.tenant, "promise_id": o.contact_id, "account_id": o.account_id,
         "amount_minor": o.promise.amount_minor, "currency": o.promise.currency, "due_on": o.promise.due_on,
         "made_at": o.occurred_at, "grace_days": grace_days,
         "cycle_due_date": steps[o.contact_id]["due_date"] if o.contact_id in steps else None,
         # where the promised day ends last (at or after any zone's deadline): ``_standings`` moves it to the
         # deadline in the customer's zone once the treatment is known (the same whatever arrived first)
         "check_at": promises.deadline(due_on=o.promise.due_on, grace_days=grace_days, time_zone=None)}
        for o in usable if o.promise is not None])
    await _resettle(uow, keys, {})


def _latest_per_contact(outcomes: Sequence[ContactOutcomeV1]) -> list[ContactOutcomeV1]:
    """The latest report of each contact's promise: by its time, then the larger amount, then the later day."""
    latest: dict[tuple[str, str], ContactOutcomeV1] = {}

    def rank(o: ContactOutcomeV1) -> tuple[datetime, int, date]:
        assert o.promise is not None
        return o.occurred_at, o.promise.amount_minor, o.promise.due_on

    for o in outcomes:
        key = (o.tenant, o.contact_id)
        if key not in latest or rank(o) > rank(latest[key]):
            latest[key] = o
    return list(latest.values())


async def check_promises(uow: UnitOfWork, *, limit: int = 500) -> int:
    """Claim promises whose deadline passed unchecked and derive their treatments again: a broken one resumes
    the treatment and plans it again (a strategy may escalate); a kept one changes nothing more."""
    # the accounts' locks first, then the promises' rows: the order every other use case takes them in
    keys = await repo.accounts_with_due_promises(uow.session, limit=limit)
    if not keys:
        return 0
    await lock_account_keys(uow.session, keys)
    due = await repo.claim_promise_checks(uow.session, keys, limit=limit)
    if due:
        keys = {(p.tenant, p.account_id) for p in due}
        await _resettle(uow, keys, {}, replan=keys)
        await repo.mark_promises_checked(uow.session, [(p.tenant, p.promise_id) for p in due])
    return len(due)


_REACTIONS = [f"retry-{n}" for n in range(1, MAX_RETRIES + 1)] + [f"fallback-{n}" for n in range(1, len(Channel))]


async def _react(uow: UnitOfWork, failed: Sequence[Mapping[str, Any]], reached: Sequence[Mapping[str, Any]]) -> None:
    """What a contact's newest outcome calls for (docs/strategies.md, "Reactions"): one that did not reach the
    customer gets the retry or fallback its strategy names (a step of its own, pending until it falls due); one
    that failed and then reached the customer after all (a corrected receipt) cancels its retries and fallbacks
    still pending."""
    if reached:
        await repo.cancel_listed_steps(uow.session, [
            (contact_id_for(tenant=s["tenant"], account_id=s["account_id"], due_date=s["due_date"],
                            step=f"{StepName.parse(s['step']).base}/{r}"),
             f"not needed: {s['step']} reached the customer")
            for s in reached for r in _REACTIONS], statuses=("pending",), status=StepStatus.CANCELLED.value)
    if not failed:
        return
    treatments = await repo.treatments_of(uow.session, {(s["tenant"], s["account_id"]) for s in failed})
    followed = await strategies.current(uow.session, {s["tenant"] for s in failed})
    now = datetime.now(UTC)
    planned: dict[str, dict[str, Any]] = {}
    for s in failed:
        t = treatments.get((s["tenant"], s["account_id"]))
        if t is None or t["due_date"] != s["due_date"]:
            continue  # a step of an earlier delinquency cycle: its reactions ended with it
        ref = strategies.parse_ref(s["strategy"]) if s["strategy"] else None
        strategy = (await strategies.strategy_of(uow.session, s["tenant"], ref) if ref else None) or \
            followed[s["tenant"]].follow(borrower=_borrower(t), segment=t["segment"])[1]
        plan = after_outcome(strategy, _account(t, 0), step=s["step"], channel=Channel(s["channel"]),
                             outcome=s["outcome"], outcome_at=s["outcome_at"])
        if plan is not None:
            row = _step_row(t, plan, now, strategy=strategy.ref, arm=s["arm"] or "champion",
                            experiment=s["experiment"])
            planned[row["contact_id"]] = row
    existing = await repo.lock_steps(uow.session, planned)
    new = [row for cid, row in planned.items() if cid not in existing]
    for row in new:
        if row["status"] == StepStatus.REQUESTED.value:
            _emit_request(uow, row, None)
    await repo.insert_steps(uow.session, new)


async def apply_plan_events(uow: UnitOfWork, *, plan_events: Sequence[PlanEventV1]) -> None:
    """Keep each plan's last word (an end beats ``agreed`` whatever the order), then derive the
    treatments again: an agreed plan not yet ended pauses one; its end resumes it unless nothing is
    overdue any more. Plan events for an account with no treatment yet are kept for when it appears."""
    await lock_account_keys(uow.session, {(p.tenant, p.account_id) for p in plan_events})
    newest: dict[tuple[str, str], PlanEventV1] = {}
    for p in plan_events:
        held = newest.get((p.tenant, p.plan_id))
        if plan_supersedes(stored=(held.kind, held.occurred_at) if held else None, incoming=(p.kind, p.occurred_at)):
            newest[(p.tenant, p.plan_id)] = p
    stored = await repo.lock_plans(uow.session, newest.keys())
    kept = {key: (row.kind, row.occurred_at) for key, row in stored.items()}
    superseding = [p for key, p in newest.items()
                   if plan_supersedes(stored=kept.get(key), incoming=(p.kind, p.occurred_at))]
    await repo.save_plans(uow.session, [{"tenant": p.tenant, "plan_id": p.plan_id, "account_id": p.account_id,
                                         "kind": p.kind, "occurred_at": p.occurred_at} for p in superseding])
    await _resettle(uow, {(p.tenant, p.account_id) for p in superseding}, {},
                    replan={(p.tenant, p.account_id) for p in superseding if p.kind == "broken"})


async def apply_promise_events(uow: UnitOfWork, *, events: Sequence[PromiseEventV1]) -> None:
    """Keep each promise recorded in plans (``plans.promise-event.v1``) with its deadline and plans' last word on it
    (an end beats ``open`` whatever the order: ``promises.verdict_supersedes``), then derive the treatments again,
    as for a promise made on a call: an open promise pauses the treatment until its deadline, where the timer checks
    it; cancelled, it pauses nothing; kept, it is kept; partial or broken, it counts as broken (a strategy's
    ``broken_promises`` conditions) and its treatment is planned again. Plans' verdict is trusted over the
    scheduler's own view of the payments, which decides only while plans still calls the promise open. Promises for
    an account with no treatment yet are kept for when it appears."""
    accounts = {(e.tenant, e.account_id) for e in events}
    await lock_account_keys(uow.session, accounts)
    known = await repo.promises_by_id(uow.session, {(e.tenant, promises.PLANS_PREFIX + e.promise_id) for e in events})
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for e in events:
        key = (e.tenant, promises.PLANS_PREFIX + e.promise_id)
        current = rows.get(key) or (dict(known[key]._mapping) if key in known else None)
        last = (current["verdict"], current["verdict_at"]) if current and current["verdict"] else None
        if current and (current["account_id"], current["currency"]) != (e.account_id, e.currency):
            log.warning("a promise event names another account or currency than its promise: ignored",
                        extra={"tenant": e.tenant, "promise_id": e.promise_id})
            continue
        if promises.verdict_supersedes(stored=last, incoming=(e.status, e.occurred_at)):
            rows[key] = {"tenant": e.tenant, "promise_id": key[1], "account_id": e.account_id,
                         "amount_minor": e.amount_minor, "currency": e.currency, "due_on": e.due_on,
                         "made_at": e.made_at, "grace_days": 0, "cycle_due_date": None, "check_at": e.deadline,
                         "checked_at": current["checked_at"] if current else None, "deadline": e.deadline,
                         "verdict": e.status, "verdict_at": e.occurred_at}
    await repo.save_plans_promises(uow.session, list(rows.values()))
    await _resettle(uow, {(r["tenant"], r["account_id"]) for r in rows.values()}, {},
                    replan={(r["tenant"], r["account_id"]) for r in rows.values()
                            if r["verdict"] in ("partial", "broken")})


async def apply_payments(uow: UnitOfWork, *, payments: Sequence[PaymentReceivedV1]) -> None:
    """Keep each payment once (even before its account has a treatment), then derive the treatments
    again: one with nothing overdue any more stops."""
    unique = {(p.tenant, p.payment_id): p for p in payments}
    await lock_account_keys(uow.session, {(p.tenant, p.account_id) for p in unique.values()})
    new = await repo.record_payments(uow.session, [
        {"tenant": p.tenant, "payment_id": p.payment_id, "account_id": p.account_id, "amount_minor": p.amount_minor,
         "currency": p.currency, "paid_at": p.paid_at} for p in unique.values()])
    await _resettle(uow, {(p.tenant, p.account_id) for key, p in unique.items() if key in new}, {})


async def request_due_steps(uow: UnitOfWork, *, limit: int = 500) -> int:
    """Claim due pending steps of active treatments and emit their contact requests."""
    due = await repo.claim_due_steps(uow.session, limit=limit)
    now = datetime.now(UTC)
    for step, overdue, dpd in due:
        step.status = STEP.apply(StepStatus(step.status), StepEvent.DUE).value
        # a deferred contact states today's amount and DPD, not those of when it was planned
        step.overdue_minor, step.days_past_due, step.due_at = overdue, dpd, now
        _emit_request(uow, step.model_dump(), None)
    return len(due)


async def resend_stale_requests(uow: UnitOfWork, *, older_than: timedelta, limit: int = 500) -> int:
    """Request again, with the same contact id and attempt, each step whose request got no verdict in
    ``older_than`` (a request lost on the way). Idempotent: compliance answers a repeated attempt with
    the decision it already made, and channels sends one contact id once."""
    now = datetime.now(UTC)
    stale = await repo.claim_stale_requests(uow.session, requested_before=now - older_than, limit=limit)
    for step in stale:
        step.due_at = now
        step.last_reason = f"requested again: no verdict after {int(older_than.total_seconds())} s"
        _emit_request(uow, step.model_dump(), None)
    if stale:
        metrics.REQUESTS_RESENT.inc(len(stale))
    return len(stale)


async def get_treatment(session: Any, *, tenant: str, account_id: str) -> tuple[Treatment, list[TreatmentStep]]:
    """The account's treatment and its steps, in the caller's tenant only."""
    treatment = await repo.get_treatment(session, tenant=tenant, account_id=account_id)
    if treatment is None:
        raise NotFound(f"No treatment for account {account_id!r} in your tenant.")
    return treatment, await repo.list_steps(session, tenant=tenant, account_id=account_id)

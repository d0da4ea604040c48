"""Plans' use cases: keep the accounts' overdue snapshots and payments; agree, read and cancel plans;
allocate payments to the agreed plan.

Statuses come from ``domain/states.py``; the schedule's checks and the allocation from
``domain/schedule.py``; what an account owes now and whether a plan covers it from ``domain/accounts.py``.
Every change of a plan announces a PlanEvent (the scheduler pauses, resumes or stops).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy.exc import IntegrityError

from services.plans.db import negotiation as negotiation_repo
from services.plans.db import repository as repo
from services.plans.db.models import Plan, PlanInstalment
from services.plans.domain.accounts import PaymentFact, SnapshotTime, is_newer_snapshot, overdue_now, require_cover
from services.plans.domain.arithmetic import split
from services.plans.domain.lenders import lenders_of
from services.plans.domain.schedule import allocate, build_schedule
from services.plans.domain.states import (
    INSTALMENT,
    PLAN,
    InstalmentStatus,
    PlanEvent,
    PlanStatus,
    payment_event,
)
from shared.contracts import CloudEvent, topics
from shared.contracts.events import (
    AccountOverdueV1,
    AccountSegmentedV1,
    Instalment,
    PaymentReceivedV1,
    PlanEventV1,
    WriteOffV1,
    WrittenOffShare,
)
from shared.domain import DomainError, NotFound
from shared.uow import UnitOfWork


class PlanConflict(DomainError):
    status = 409
    title = "Plan already agreed"


class IdempotencyKeyReused(DomainError):
    status = 422
    title = "Idempotency-Key reused"


class PlanNotActive(DomainError):
    status = 409
    title = "Plan not active"


class AccountUnknown(NotFound):
    """No overdue notice for this account of the tenant has reached plans (yet): another tenant's account,
    a wrong id, or a notice still on its way. The same answer in every case, so nothing leaks across tenants."""

    title = "Account not known to plans"


class CurrencyMismatch(DomainError):
    status = 422
    title = "Currency mismatch"


class CustomerMismatch(DomainError):
    status = 422
    title = "Customer mismatch"


class NothingOverdue(DomainError):
    status = 409
    title = "Nothing overdue"


@dataclass(frozen=True, slots=True)
class PlanView:
    """A plan with its schedule; ``replayed`` when an earlier request with the same Idempotency-Key made it."""

    plan: Plan
    instalments: list[PlanInstalment]
    replayed: bool = False


def _announce(uow: UnitOfWork, plan: Plan, instalments: list[PlanInstalment], kind: str) -> None:
    payload = PlanEventV1(
        tenant=plan.tenant, plan_id=plan.plan_id, account_id=plan.account_id, customer_id=plan.customer_id,
        kind=kind, currency=plan.currency, total_minor=plan.total_minor,  # type: ignore[arg-type]
        instalments=[Instalment(seq=i.seq, due_date=i.due_date, amount_minor=i.amount_minor) for i in instalments],
        occurred_at=datetime.now(UTC))
    uow.emit(topics.PLAN_EVENT, payload, subject=plan.plan_id)


async def _view(session: object, tenant: str, plan_id: str, *, lock: bool = False,
                replayed: bool = False) -> PlanView:
    plan = await repo.get(session, tenant=tenant, plan_id=plan_id, lock=lock)  # type: ignore[arg-type]
    if plan is None:
        raise NotFound(f"No plan {plan_id!r} in your tenant.")
    return PlanView(plan, await repo.instalments(session, plan_id), replayed)  # type: ignore[arg-type]


async def _replayed(uow: UnitOfWork, tenant: str, idempotency_key: str | None,
                    request_hash: str | None) -> PlanView | None:
    if not idempotency_key:
        return None
    existing = await repo.by_idempotency_key(uow.session, tenant=tenant, key=idempotency_key)
    if existing is None:
        return None
    view = await _view(uow.session, tenant, existing, replayed=True)
    if request_hash is not None and view.plan.request_hash not in (None, request_hash):
        raise IdempotencyKeyReused(f"Idempotency-Key {idempotency_key!r} was used for plan {existing} with another "
                                   "request; use a new key for a new request.")
    return view


async def _require_covered_account(uow: UnitOfWork, *, tenant: str, account_id: str, customer_id: str,
                                   currency: str, total_minor: int) -> None:
    """The account must be the tenant's, known here from its overdue notice, the customer's, in the plan's
    currency, owe something, and the plan must cover what it owes now; else a DomainError (and the caller
    stores nothing)."""
    account = await repo.account(uow.session, tenant=tenant, account_id=account_id)
    if account is None:
        raise AccountUnknown(
            f"Account {account_id!r} is not known to plans for your tenant: a plan can only be agreed once the "
            f"account's overdue notice (core.account-overdue.v1) has reached plans. If it was sent just now, "
            f"retry shortly; otherwise check the account id.")
    if account.customer_id != customer_id:
        raise CustomerMismatch(f"Account {account_id!r} is not customer {customer_id!r}'s: give the customer_id its "
                               "overdue notice names (plan events are keyed by it).")
    if account.currency != currency:
        raise CurrencyMismatch(f"Account {account_id!r} is in {account.currency}; this plan is in {currency}. "
                               f"Agree the plan in {account.currency}.")
    payments = await repo.payments_of_account(uow.session, tenant=tenant, account_id=account_id)
    owed = overdue_now(reported_minor=account.overdue_minor, currency=account.currency, as_of=account.as_of,
                       payments=[PaymentFact(p.amount_minor, p.currency, p.paid_at) for p in payments])
    if owed == 0:
        raise NothingOverdue(f"Account {account_id!r} has nothing overdue now (paid since its last overdue notice): "
                             "no plan is needed.")
    require_cover(total_minor=total_minor, overdue_minor=owed, currency=currency)


async def agree_plan(uow: UnitOfWork, *, tenant: str, account_id: str, customer_id: str, currency: str,
                     reason: str, instalments: Sequence[tuple[date, Decimal]], idempotency_key: str | None,
                     today: date, request_hash: str | None = None) -> PlanView:
    """Record an agreed plan and announce it. The same Idempotency-Key returns the same plan, even after
    its first due date has passed (the key is looked up before the schedule is checked against today).
    An empty key is no key. The account must be known to plans for this tenant (``AccountUnknown``), be the
    given customer's (``CustomerMismatch``), in the plan's currency (``CurrencyMismatch``), owe something
    (``NothingOverdue``), and the plan's total must cover what it owes now (``PlanDoesNotCover``)."""
    idempotency_key = idempotency_key or None
    if (replayed := await _replayed(uow, tenant, idempotency_key, request_hash)) is not None:
        return replayed
    schedule = build_schedule(list(instalments), currency=currency, today=today)
    await _require_covered_account(uow, tenant=tenant, account_id=account_id, customer_id=customer_id,
                                   currency=currency, total_minor=sum(s.amount_minor for s in schedule))
    active = await repo.agreed_plan(uow.session, tenant=tenant, account_id=account_id)
    if active is not None:
        raise PlanConflict(f"Account {account_id!r} already has plan {active.plan_id}; cancel it first.")
    plan = Plan(plan_id=str(uuid.uuid4()), tenant=tenant, account_id=account_id, customer_id=customer_id,
                currency=currency, total_minor=sum(s.amount_minor for s in schedule), status=PlanStatus.AGREED.value,
                reason=reason, idempotency_key=idempotency_key, request_hash=request_hash)
    rows = [PlanInstalment(plan_id=plan.plan_id, seq=s.seq, due_date=s.due_date, amount_minor=s.amount_minor)
            for s in schedule]
    try:
        async with uow.session.begin_nested():
            await repo.add_plan(uow.session, plan, rows)
    except IntegrityError as exc:
        # A concurrent request won the race: the same Idempotency-Key, or another plan for the account.
        if (replayed := await _replayed(uow, tenant, idempotency_key, request_hash)) is not None:
            return replayed
        raise PlanConflict(f"Account {account_id!r} already has an agreed plan; cancel it first.") from exc
    _announce(uow, plan, rows, "agreed")
    return PlanView(plan, rows)


async def cancel_plan(uow: UnitOfWork, *, tenant: str, plan_id: str) -> PlanView:
    """Cancel an agreed plan and announce it (the scheduler resumes the treatment); or withdraw one pending
    approval (never announced as agreed, so nothing is announced)."""
    view = await _view(uow.session, tenant, plan_id, lock=True)
    status = PlanStatus(view.plan.status)
    if not PLAN.allows(status, PlanEvent.CANCEL):
        raise PlanNotActive(f"Plan {plan_id} is {status.value}; only agreed plans, or plans pending approval, "
                            "cancel.")
    view.plan.status = PLAN.apply(status, PlanEvent.CANCEL).value
    if status is PlanStatus.AGREED:
        _announce(uow, view.plan, view.instalments, "cancelled")
    return view


async def get_plan(session: object, *, tenant: str, plan_id: str) -> PlanView:
    return await _view(session, tenant, plan_id)


async def plans_of_account(session: object, *, tenant: str, account_id: str) -> list[PlanView]:
    ids = await repo.plan_ids_of_account(session, tenant=tenant, account_id=account_id)  # type: ignore[arg-type]
    return [await _view(session, tenant, pid) for pid in ids]


async def record_overdue(uow: UnitOfWork, *, overdue: Sequence[tuple[AccountOverdueV1, CloudEvent]]) -> None:
    """Keep each account's newest overdue snapshot (by event time), in the batch and against what is stored:
    an older one arriving late changes nothing."""
    latest: dict[tuple[str, str], tuple[AccountOverdueV1, SnapshotTime]] = {}
    for p, event in overdue:
        key, at = (p.tenant, p.account_id), SnapshotTime(event.time, p.due_date, p.days_past_due, p.overdue_minor)
        if key not in latest or is_newer_snapshot(at, latest[key][1]):
            latest[key] = (p, at)
    stored = await repo.lock_accounts(uow.session, latest.keys())
    rows = []
    for key, (p, at) in sorted(latest.items(), key=lambda item: item[0]):
        old = stored.get(key)
        if not is_newer_snapshot(at, None if old is None else SnapshotTime(
                old.as_of, old.due_date, old.days_past_due, old.overdue_minor)):
            continue
        rows.append({"tenant": p.tenant, "account_id": p.account_id, "customer_id": p.customer_id,
                     "currency": p.currency, "overdue_minor": p.overdue_minor,
                     "outstanding_minor": p.outstanding_minor, "due_date": p.due_date,
                     "days_past_due": p.days_past_due, "as_of": at.as_of, "product": p.product,
                     "co_lenders": [{"tenant": c.tenant, "share_bp": c.share_bp} for c in p.co_lenders],
                     "contact": p.contact.model_dump(mode="json"), "account_ref": p.account_ref})
    await repo.save_accounts(uow.session, rows)


async def record_segments(uow: UnitOfWork, *, segmented: Sequence[tuple[AccountSegmentedV1, CloudEvent]]) -> None:
    """Keep each account's newest segment and DPD bucket by event time (an older one arriving late changes
    nothing; ties keep the stored one)."""
    latest: dict[tuple[str, str], tuple[AccountSegmentedV1, datetime]] = {}
    for p, event in segmented:
        key = (p.tenant, p.account_id)
        if key not in latest or event.time > latest[key][1]:
            latest[key] = (p, event.time)
    await repo.save_segments(uow.session, [
        {"tenant": p.tenant, "account_id": p.account_id, "segment": p.segment.value, "dpd_bucket": p.dpd_bucket,
         "as_of": at} for (p, at) in (latest[k] for k in sorted(latest))])


async def apply_payments(uow: UnitOfWork, *, payments: Sequence[PaymentReceivedV1]) -> None:
    """Keep every payment once (for the accounts' overdue amount, even before the account is known), and
    allocate each (once) to the account's agreed plan, oldest instalment first; paid off means completed."""
    in_key_order = sorted(payments, key=lambda p: (p.tenant, p.payment_id))  # concurrent batches never deadlock
    await repo.record_payments(uow.session, [
        {"tenant": p.tenant, "payment_id": p.payment_id, "account_id": p.account_id, "amount_minor": p.amount_minor,
         "currency": p.currency, "paid_at": p.paid_at} for p in in_key_order])
    # by account, keeping each account's own order: row locks are always taken in the same order
    for p in sorted(payments, key=lambda p: (p.tenant, p.account_id)):
        plan = await repo.agreed_plan(uow.session, tenant=p.tenant, account_id=p.account_id, currency=p.currency,
                                      lock=True)
        if plan is None:
            continue
        if not await repo.record_payment(uow.session, tenant=p.tenant, payment_id=p.payment_id,
                                         plan_id=plan.plan_id, amount_minor=p.amount_minor):
            continue
        schedule = await repo.instalments(uow.session, plan.plan_id)
        by_seq = {i.seq: i for i in schedule}
        for seq, applied in allocate(p.amount_minor, [(i.seq, i.amount_minor - i.paid_minor) for i in schedule]):
            instalment = by_seq[seq]
            event = payment_event(owed_minor=instalment.amount_minor - instalment.paid_minor, applied_minor=applied)
            instalment.status = INSTALMENT.apply(InstalmentStatus(instalment.status), event).value
            instalment.paid_minor += applied
        paid = plan.paid_minor + p.amount_minor
        plan.paid_minor = min(paid, plan.total_minor)
        plan.updated_at = datetime.now(UTC)
        if paid >= plan.total_minor:
            plan.status = PLAN.apply(PlanStatus(plan.status), PlanEvent.PAID_OFF).value
            _announce(uow, plan, schedule, "completed")
            await _write_off(uow, plan, overpaid_minor=paid - plan.total_minor)
        await uow.session.flush()


async def _write_off(uow: UnitOfWork, plan: Plan, *, overpaid_minor: int = 0) -> None:
    """A settlement or waiver paid off: announce what it writes off (plans.write-off.v1) for core banking, split
    between the account's lenders by their shares (the servicer holds what the co-lenders do not), approved by
    those who approved the agreement (its maker when it was within the maker's authority). What the payments
    brought beyond the plan's total was not left unpaid: it is written off the less (and the plan's
    ``written_off_minor`` says so); nothing left, nothing announced. Once per plan: its id is derived from the
    plan's."""
    if plan.kind not in ("settlement", "waiver") or plan.written_off_minor <= 0:
        return
    plan.written_off_minor = max(plan.written_off_minor - max(overpaid_minor, 0), 0)
    if plan.written_off_minor == 0:
        return
    account = await repo.account(uow.session, tenant=plan.tenant, account_id=plan.account_id)
    shares = lenders_of(plan.tenant, account.co_lenders if account is not None else [])
    parts = split(plan.written_off_minor, shares)
    decided = [a for a in await negotiation_repo.approvals(uow.session, plan.plan_id) if a.status == "approved"]
    approved_by = [a.decided_by if a.decided_tenant == plan.tenant else f"{a.decided_tenant}/{a.decided_by}"
                   for a in decided if a.decided_by] or ([plan.made_by] if plan.made_by else [])
    write_off_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"plans:write-off:{plan.tenant}:{plan.plan_id}"))
    payload = WriteOffV1(
        tenant=plan.tenant, write_off_id=write_off_id, plan_id=plan.plan_id, account_id=plan.account_id,
        customer_id=plan.customer_id, kind=plan.kind, currency=plan.currency,  # type: ignore[arg-type]
        amount_minor=plan.written_off_minor,
        shares=[WrittenOffShare(lender=lender, share_bp=shares[lender], amount_minor=parts[lender])
                for lender in sorted(shares)],
        approved_by=approved_by[:10], occurred_at=datetime.now(UTC))
    uow.emit(topics.WRITE_OFF, payload, subject=plan.plan_id, event_id=write_off_id)

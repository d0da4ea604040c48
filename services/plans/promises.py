"""Promises to pay: make, cancel, read; count payments towards open promises; decide those whose deadline passed.

The rules are ``domain/promises.py``'s (the definition is ``domain/arithmetic.py`` ``promise_status``); each status
is derived again from the payments plans keeps (``account_payments``: once per payment id, whenever it arrived), so
a payment delivered twice, late or before the promise changes nothing the definition does not. Every change of
status announces a PromiseEventV1 (plans.promise-event.v1, subject the promise id): the scheduler pauses or
resumes the treatment, compliance holds on it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from services.plans.db import promises as promise_repo
from services.plans.db import repository as repo
from services.plans.db.promises import PlanPromise
from services.plans.domain.accounts import PaymentFact
from services.plans.domain.promises import (
    PROMISE,
    PromiseEvent,
    PromiseStatus,
    PromiseTerms,
    counted_minor,
    deadline,
    event_towards,
    local_day,
    refusals,
    status_of,
)
from services.plans.service import AccountUnknown
from shared.contracts import topics
from shared.contracts.events import PaymentReceivedV1, PromiseEventV1
from shared.domain import DomainError, NotFound, Refused
from shared.uow import UnitOfWork

GRACE_DAYS = 2   # PLANS_PROMISE_GRACE_DAYS' default
MAX_DAYS = 30    # PLANS_PROMISE_MAX_DAYS' default


class PromiseConflict(DomainError):
    status = 409
    title = "Promise already open"


class PromiseNotOpen(DomainError):
    status = 409
    title = "Promise not open"


class PromiseRefused(Refused):
    title = "Promise refused"


@dataclass(frozen=True, slots=True)
class PromiseView:
    """A promise as the routes and the portal show it."""

    promise_id: str
    tenant: str
    account_id: str
    customer_id: str
    status: str
    source: str
    amount_minor: int
    currency: str
    paid_minor: int
    due_on: date
    deadline: datetime
    made_at: datetime
    made_by: str
    reason: str
    cancelled_by: str | None
    cancel_reason: str | None
    decided_at: datetime | None

    @classmethod
    def of(cls, row: PlanPromise) -> PromiseView:
        return cls(promise_id=row.promise_id, tenant=row.tenant, account_id=row.account_id,
                   customer_id=row.customer_id, status=row.status, source=row.source, amount_minor=row.amount_minor,
                   currency=row.currency, paid_minor=row.paid_minor, due_on=row.due_on, deadline=row.deadline,
                   made_at=row.made_at, made_by=row.made_by, reason=row.reason, cancelled_by=row.cancelled_by,
                   cancel_reason=row.cancel_reason, decided_at=row.decided_at)


def _terms(row: PlanPromise) -> PromiseTerms:
    return PromiseTerms(amount_minor=row.amount_minor, currency=row.currency, due_on=row.due_on,
                        made_at=row.made_at, grace_days=row.grace_days, time_zone=row.time_zone)


def _announce(uow: UnitOfWork, row: PlanPromise, *, now: datetime) -> None:
    uow.emit(topics.PROMISE_EVENT, PromiseEventV1(
        tenant=row.tenant, promise_id=row.promise_id, account_id=row.account_id, customer_id=row.customer_id,
        status=row.status, source=row.source, currency=row.currency,  # type: ignore[arg-type]
        amount_minor=row.amount_minor, paid_minor=row.paid_minor, due_on=row.due_on, deadline=row.deadline,
        made_at=row.made_at, occurred_at=now), subject=row.promise_id)


async def _settle(uow: UnitOfWork, row: PlanPromise, *, now: datetime) -> bool:
    """Derive the promise's status from the account's payments at ``now``; apply and announce a change. True when
    the status changed."""
    stored = await repo.payments_of_account(uow.session, tenant=row.tenant, account_id=row.account_id)
    payments = [PaymentFact(p.amount_minor, p.currency, p.paid_at) for p in stored]
    terms = _terms(row)
    current = PromiseStatus(row.status)
    if current == PromiseStatus.CANCELLED:
        return False
    row.paid_minor = counted_minor(terms, payments)
    event = event_towards(current, status_of(terms, payments, now=now))
    if event is None:
        return False
    row.status = PROMISE.apply(current, event).value
    row.decided_at = now
    _announce(uow, row, now=now)
    return True


async def make_promise(uow: UnitOfWork, *, tenant: str, account_id: str, amount_minor: int, currency: str,
                       due_on: date, source: str, made_by: str, now: datetime, reason: str = "",
                       grace_days: int = GRACE_DAYS, max_days: int = MAX_DAYS,
                       amount_error: str | None = None) -> PromiseView:
    """Record a promise to pay and announce it (``open``). The account must be known to plans for the tenant
    (``AccountUnknown``, 404); the amount positive and in the account's currency, ``due_on`` today or up to
    ``max_days`` ahead in the account's time zone (``PromiseRefused``, 422, with every reason); no other promise
    of the account open (``PromiseConflict``, 409). Its deadline is the end of ``due_on`` plus ``grace_days`` in
    the account's zone. A refused promise stores nothing."""
    account = await repo.account(uow.session, tenant=tenant, account_id=account_id)
    if account is None:
        raise AccountUnknown(f"Account {account_id!r} is not known to plans for your tenant: a promise can only be "
                             "recorded once the account's overdue notice (core.account-overdue.v1) has reached plans.")
    contact: dict[str, Any] = account.contact or {}
    time_zone = str(contact.get("time_zone") or "Asia/Shanghai")
    # ``amount_error``: the amount could not be read (finer than the currency allows): listed with the others
    errors = ([f"amount: {amount_error}"] if amount_error else []) + refusals(
        amount_minor=1 if amount_error else amount_minor, currency=currency, account_currency=account.currency,
        due_on=due_on, today=local_day(now, time_zone), max_days=max_days, source=source)
    if errors:
        raise PromiseRefused(errors)
    if (existing := await promise_repo.open_of_account(uow.session, tenant=tenant, account_id=account_id)):
        raise PromiseConflict(f"Account {account_id!r} already has open promise {existing.promise_id}; cancel it "
                              "first or wait for it to be decided.")
    row = PlanPromise(promise_id=str(uuid.uuid4()), tenant=tenant, account_id=account_id,
                      customer_id=account.customer_id, currency=currency, amount_minor=amount_minor, due_on=due_on,
                      grace_days=grace_days, time_zone=time_zone,
                      deadline=deadline(day=due_on, grace_days=grace_days, time_zone=time_zone), made_at=now,
                      status=PromiseStatus.OPEN.value, source=source, made_by=made_by, reason=reason)
    try:
        async with uow.session.begin_nested():
            await promise_repo.add(uow.session, row)
    except IntegrityError as exc:  # a concurrent request opened one first
        raise PromiseConflict(f"Account {account_id!r} already has an open promise; cancel it first.") from exc
    _announce(uow, row, now=now)
    await _settle(uow, row, now=now)  # a payment booked since it was made may already be here
    await uow.session.flush()
    return PromiseView.of(row)


async def cancel_promise(uow: UnitOfWork, *, tenant: str, promise_id: str, reason: str, cancelled_by: str,
                         now: datetime) -> PromiseView:
    """Cancel an open promise and announce it (``cancelled``); a decided one is ``PromiseNotOpen`` (409)."""
    row = await promise_repo.get(uow.session, tenant=tenant, promise_id=promise_id, lock=True)
    if row is None:
        raise NotFound(f"No promise {promise_id!r} in your tenant.")
    status = PromiseStatus(row.status)
    if not PROMISE.allows(status, PromiseEvent.CANCEL):
        raise PromiseNotOpen(f"Promise {promise_id} is {status.value}; only open promises cancel.")
    row.status = PROMISE.apply(status, PromiseEvent.CANCEL).value
    row.cancelled_by, row.cancel_reason, row.decided_at = cancelled_by, reason, now
    _announce(uow, row, now=now)
    await uow.session.flush()
    return PromiseView.of(row)


async def get_promise(session: Any, *, tenant: str, promise_id: str) -> PromiseView:
    row = await promise_repo.get(session, tenant=tenant, promise_id=promise_id)
    if row is None:
        raise NotFound(f"No promise {promise_id!r} in your tenant.")
    return PromiseView.of(row)


async def promises_of_account(session: Any, *, tenant: str, account_id: str) -> list[PromiseView]:
    """The account's promises, newest first; ``AccountUnknown`` (404) for an account plans does not know for the
    tenant and that has no promise."""
    rows = await promise_repo.of_account(session, tenant=tenant, account_id=account_id)
    if not rows and await repo.account(session, tenant=tenant, account_id=account_id) is None:
        raise AccountUnknown(f"Account {account_id!r} is not known to plans for your tenant.")
    return [PromiseView.of(r) for r in rows]


async def apply_payments(uow: UnitOfWork, *, payments: Sequence[PaymentReceivedV1],
                         now: datetime | None = None) -> int:
    """Count payments (already kept by ``service.apply_payments`` in this unit of work) towards their accounts'
    promises: each promise not cancelled whose deadline is after the earliest payment is derived again from all the
    account's payments (kept as soon as they reach the amount; ``paid_minor`` of a kept one grows on, without an
    event). Returns how many changed status."""
    if not payments:
        return 0
    now = now or datetime.now(UTC)
    keys = sorted({(p.tenant, p.account_id) for p in payments})
    rows = await promise_repo.lock_counting(uow.session, keys, booked_from=min(p.paid_at for p in payments))
    changed = 0
    for row in rows:
        changed += await _settle(uow, row, now=now)
    await uow.session.flush()
    return changed


async def decide_due_promises(uow: UnitOfWork, *, now: datetime, limit: int = 500) -> int:
    """Claim a batch of open promises whose deadline passed and decide them (partial or broken; kept if the
    payments were enough). Returns how many were claimed."""
    rows = await promise_repo.claim_due(uow.session, now=now, limit=limit)
    for row in rows:
        await _settle(uow, row, now=now)
    await uow.session.flush()
    return len(rows)

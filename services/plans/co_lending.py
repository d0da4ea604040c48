"""Co-lending's use cases (docs/plans.md, "Co-lending"): split each payment between the account's lenders once,
and what a co-lender may read of an account it co-lends.

A payment is split when it arrives if its account's overdue notice has reached plans, by the co-lenders that
notice lists; otherwise it waits, and the notice splits it when it arrives. Both paths take the account's
advisory lock first (``shared.db.lock_account_keys``), so a payment and its account's first notice handled at the
same time by two replicas each see the other; a split's head row is inserted once per payment, so a redelivered
payment or notice splits nothing twice. Whatever the order of one notice and its payments, the splits are the same.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.plans import service
from services.plans.db import co_lending as repo
from services.plans.db import repository as accounts_repo
from services.plans.domain.accounts import PaymentFact, overdue_now
from services.plans.domain.lenders import lenders_of, mask_name, mask_phone, split_payment
from shared.crypto import PiiCipher, PiiCryptoError
from shared.db import lock_account_keys
from shared.domain import NotFound
from shared.uow import UnitOfWork

AccountKey = tuple[str, str]


class CoLentAccountNotFound(NotFound):
    """Not an account the caller co-lends: unknown, or the servicer does not list the caller. The same answer
    in both cases, so nothing leaks across tenants."""

    title = "Account not found"


async def split_pending(uow: UnitOfWork, *, accounts: Collection[AccountKey]) -> int:
    """Split every kept payment of these (servicer, account_id) not split yet, if the account is known, by its
    lenders as known now; returns how many payments were split. Called when payments arrive (after plans kept
    them) and when overdue notices arrive."""
    keys = sorted(set(accounts))
    if not keys:
        return 0
    await lock_account_keys(uow.session, keys)
    known = await repo.accounts_lenders(uow.session, keys)
    waiting = [p for p in await repo.unsplit_payments(uow.session, list(known)) if (p.tenant, p.account_id) in known]
    if not waiting:
        return 0
    heads = await repo.claim_splits(uow.session, [
        {"tenant": p.tenant, "payment_id": p.payment_id, "account_id": p.account_id, "currency": p.currency,
         "amount_minor": p.amount_minor, "paid_at": p.paid_at} for p in waiting])
    parts = []
    for p in waiting:
        if (p.tenant, p.payment_id) not in heads:
            continue
        co_lenders = known[(p.tenant, p.account_id)].co_lenders
        shares = lenders_of(p.tenant, co_lenders)
        for lender, amount in sorted(split_payment(p.amount_minor, servicer=p.tenant, co_lenders=co_lenders).items()):
            parts.append({"tenant": p.tenant, "payment_id": p.payment_id, "lender": lender,
                          "account_id": p.account_id, "share_bp": shares[lender], "amount_minor": amount})
    await repo.add_parts(uow.session, parts)
    return len(heads)


@dataclass(frozen=True, slots=True)
class PaymentSplitView:
    payment_id: str
    currency: str
    amount_minor: int
    paid_at: datetime
    parts: dict[str, tuple[int, int]]  # lender -> (share_bp, amount_minor)


@dataclass(frozen=True, slots=True)
class Recoveries:
    """An account's split payments and each lender's total by currency."""

    payments: list[PaymentSplitView]
    totals: dict[str, dict[str, int]] = field(default_factory=dict)  # lender -> currency -> minor units


async def recoveries(session: AsyncSession, *, tenant: str, account_id: str) -> Recoveries:
    """Every split payment of the servicer's account with each lender's part, and each lender's total."""
    by_payment: dict[str, PaymentSplitView] = {}
    totals: dict[str, dict[str, int]] = {}
    for r in await repo.parts_of_account(session, tenant=tenant, account_id=account_id):
        view = by_payment.setdefault(r.payment_id, PaymentSplitView(r.payment_id, r.currency, r.payment_minor,
                                                                    r.paid_at, {}))
        view.parts[r.lender] = (r.share_bp, r.amount_minor)
        lender_totals = totals.setdefault(r.lender, {})
        lender_totals[r.currency] = lender_totals.get(r.currency, 0) + r.amount_minor
    return Recoveries(list(by_payment.values()), totals)


async def servicer_recoveries(session: AsyncSession, *, tenant: str, account_id: str) -> Recoveries:
    """The servicer's view: every lender's split of its account's payments (404 for an account it does not have)."""
    if await accounts_repo.account(session, tenant=tenant, account_id=account_id) is None:  # type: ignore[arg-type]
        raise service.AccountUnknown(f"Account {account_id!r} is not known to plans for your tenant.")
    return await recoveries(session, tenant=tenant, account_id=account_id)


@dataclass(frozen=True, slots=True)
class CoLentAccount:
    """An account a co-lender may read: amounts, lenders, masked contact, plans and recoveries."""

    servicer: str
    account_id: str
    customer_id: str
    currency: str
    product: str
    overdue_minor: int
    overdue_now_minor: int
    outstanding_minor: int
    days_past_due: int
    due_date: date
    as_of: datetime
    lenders: dict[str, int]
    contact: dict[str, str | None]
    plans: list[service.PlanView]
    recoveries: Recoveries


async def co_lent_accounts(session: AsyncSession, *, lender: str, limit: int = 100,
                           after: AccountKey | None = None) -> list[Any]:
    """The accounts whose servicers list ``lender`` as a co-lender, by servicer and account id."""
    return await repo.co_lent_accounts(session, lender=lender, limit=limit, after=after)


def masked_contact(contact: dict[str, Any], *, cipher: PiiCipher, servicer: str) -> dict[str, str | None]:
    """The contact as a co-lender may see it: name and phone masked, e-mail's first character and domain, time
    zone and locale; no address or national id. A value that cannot be opened shows as masked entirely."""

    def opened(name: str) -> str | None:
        sealed = contact.get(name)
        if not sealed:
            return None
        try:
            return cipher.open(sealed, context=servicer)
        except PiiCryptoError:
            return "***"

    name, phone, email = opened("name"), opened("phone"), opened("email")
    return {"name": None if name is None else mask_name(name) if name != "***" else name,
            "phone": None if phone is None else mask_phone(phone) if phone != "***" else phone,
            "email": None if email is None else (f"{email[0]}***@{email.rpartition('@')[2]}" if "@" in email
                                                 else "***"),
            "time_zone": contact.get("time_zone"), "locale": contact.get("locale")}


async def co_lent_account(session: AsyncSession, *, lender: str, servicer: str, account_id: str,
                          cipher: PiiCipher) -> CoLentAccount:
    """What ``lender`` may read of the servicer's account, if the servicer lists it as a co-lender; else
    :class:`CoLentAccountNotFound`, exactly as for an account that does not exist."""
    account = await accounts_repo.account(session, tenant=servicer, account_id=account_id)  # type: ignore[arg-type]
    if account is None or lender == servicer or lender not in {str(c["tenant"]) for c in account.co_lenders}:
        raise CoLentAccountNotFound(f"No account {account_id!r} of servicer {servicer!r} that you co-lend.")
    payments = await accounts_repo.payments_of_account(session, tenant=servicer, account_id=account_id)  # type: ignore[arg-type]
    owed = overdue_now(reported_minor=account.overdue_minor, currency=account.currency, as_of=account.as_of,
                       payments=[PaymentFact(p.amount_minor, p.currency, p.paid_at) for p in payments])
    return CoLentAccount(
        servicer=servicer, account_id=account_id, customer_id=account.customer_id, currency=account.currency,
        product=account.product, overdue_minor=account.overdue_minor, overdue_now_minor=owed,
        outstanding_minor=account.outstanding_minor, days_past_due=account.days_past_due, due_date=account.due_date,
        as_of=account.as_of, lenders=lenders_of(servicer, account.co_lenders),
        contact=masked_contact(account.contact, cipher=cipher, servicer=servicer),
        plans=await service.plans_of_account(session, tenant=servicer, account_id=account_id),
        recoveries=await recoveries(session, tenant=servicer, account_id=account_id))


def keys_of(payloads: Sequence[Any]) -> set[AccountKey]:
    """The (tenant, account_id) of payloads."""
    return {(p.tenant, p.account_id) for p in payloads}

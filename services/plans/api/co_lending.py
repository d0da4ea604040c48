"""Co-lending over REST: what a co-lender (a principal of another tenant, listed on the account by its servicer)
may read of the accounts it co-lends, and each lender's split of the payments. Read-only: only the servicer acts
on its accounts (its own routes, under its own tenant). docs/partners.md."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from services.plans import co_lending
from services.plans.api.routes import PlanPublic, _public
from shared.deps import CipherDep, SessionDep, TenantDep
from shared.money import from_minor

router = APIRouter(tags=["co-lending"])

ServicerPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$",
                                   description="The servicer's tenant id")]
AccountPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]


class LenderPart(BaseModel):
    lender: str = Field(description="The lender's tenant id (the servicer or a co-lender)")
    share_bp: int
    amount: Decimal
    amount_minor: int


class PaymentSplitPublic(BaseModel):
    payment_id: str
    currency: str
    amount: Decimal
    amount_minor: int
    paid_at: datetime
    parts: list[LenderPart]


class LenderTotal(BaseModel):
    lender: str
    currency: str
    amount: Decimal
    amount_minor: int


class RecoveriesPublic(BaseModel):
    account_id: str
    payments: list[PaymentSplitPublic] = Field(description="Each payment split between the lenders, oldest first")
    totals: list[LenderTotal] = Field(description="Each lender's recoveries, by currency")


class CoLentAccountSummary(BaseModel):
    servicer: str
    account_id: str
    currency: str
    product: str
    share_bp: int = Field(description="Your share of the account, in basis points")
    overdue: Decimal
    overdue_minor: int = Field(description="As the servicer's newest overdue notice reported it")
    days_past_due: int
    as_of: datetime


class CoLentAccountPage(BaseModel):
    accounts: list[CoLentAccountSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class MaskedContact(BaseModel):
    name: str | None = Field(description="First character and `*`")
    phone: str | None = Field(examples=["+86 139****0001"])
    email: str | None
    time_zone: str | None
    locale: str | None


class CoLentAccountPublic(BaseModel):
    servicer: str
    account_id: str
    customer_id: str
    currency: str
    product: str
    overdue_minor: int = Field(description="As the servicer's newest overdue notice reported it")
    overdue_now: Decimal
    overdue_now_minor: int = Field(description="Less the payments booked since that notice")
    outstanding_minor: int
    days_past_due: int
    due_date: date
    as_of: datetime
    lenders: dict[str, int] = Field(description="Every lender's share in basis points, the servicer's included")
    your_share_bp: int
    contact: MaskedContact
    plans: list[PlanPublic]
    recoveries: RecoveriesPublic
    your_recoveries: list[LenderTotal] = Field(description="Your part of the payments so far, by currency")


def _recoveries(account_id: str, found: co_lending.Recoveries) -> RecoveriesPublic:
    return RecoveriesPublic(
        account_id=account_id,
        payments=[PaymentSplitPublic(
            payment_id=p.payment_id, currency=p.currency, amount=from_minor(p.amount_minor, p.currency),
            amount_minor=p.amount_minor, paid_at=p.paid_at,
            parts=[LenderPart(lender=lender, share_bp=bp, amount=from_minor(amount, p.currency), amount_minor=amount)
                   for lender, (bp, amount) in sorted(p.parts.items())]) for p in found.payments],
        totals=[LenderTotal(lender=lender, currency=currency, amount=from_minor(amount, currency), amount_minor=amount)
                for lender, by_currency in sorted(found.totals.items())
                for currency, amount in sorted(by_currency.items())])


@router.get("/v1/co-lending/accounts", response_model=CoLentAccountPage)
async def co_lent_accounts(session: SessionDep, tenant: TenantDep,
                           limit: Annotated[int, Query(ge=1, le=500)] = 100,
                           cursor: Annotated[str | None, Query(
                               max_length=200, pattern=r"^[A-Za-z0-9._-]{1,64}:[^\x00-\x1f\x7f]{1,128}$",
                               description="`next_cursor` of the previous page")]
                           = None) -> CoLentAccountPage:
    """The accounts whose servicers list your tenant as a co-lender, by servicer and account id, with your share."""
    after = tuple(cursor.split(":", 1)) if cursor else None
    rows = await co_lending.co_lent_accounts(session, lender=tenant, limit=limit,
                                             after=after)  # type: ignore[arg-type]
    accounts = [CoLentAccountSummary(
        servicer=r.tenant, account_id=r.account_id, currency=r.currency, product=r.product,
        share_bp=next(int(c["share_bp"]) for c in r.co_lenders if c["tenant"] == tenant),
        overdue=from_minor(r.overdue_minor, r.currency), overdue_minor=r.overdue_minor,
        days_past_due=r.days_past_due, as_of=r.as_of) for r in rows]
    last = accounts[-1] if len(accounts) == limit else None
    return CoLentAccountPage(accounts=accounts,
                             next_cursor=None if last is None else f"{last.servicer}:{last.account_id}")


@router.get("/v1/co-lending/{servicer}/accounts/{account_id}", response_model=CoLentAccountPublic)
async def co_lent_account(session: SessionDep, tenant: TenantDep, cipher: CipherDep, servicer: ServicerPath,
                          account_id: AccountPath) -> CoLentAccountPublic:
    """An account you co-lend: its amounts, lenders, the customer's contact masked, its plans with their
    instalments, every payment's split and your part. 404 when your tenant is not its co-lender, exactly as
    for an account that does not exist. The treatment and the contact history live in the scheduler and
    compliance and are not shown here."""
    found = await co_lending.co_lent_account(session, lender=tenant, servicer=servicer, account_id=account_id,
                                             cipher=cipher)
    recoveries = _recoveries(account_id, found.recoveries)
    return CoLentAccountPublic(
        servicer=found.servicer, account_id=found.account_id, customer_id=found.customer_id,
        currency=found.currency, product=found.product, overdue_minor=found.overdue_minor,
        overdue_now=from_minor(found.overdue_now_minor, found.currency), overdue_now_minor=found.overdue_now_minor,
        outstanding_minor=found.outstanding_minor, days_past_due=found.days_past_due, due_date=found.due_date,
        as_of=found.as_of, lenders=found.lenders, your_share_bp=found.lenders[tenant],
        contact=MaskedContact(**found.contact), plans=[_public(v) for v in found.plans], recoveries=recoveries,
        your_recoveries=[t for t in recoveries.totals if t.lender == tenant])


@router.get("/v1/accounts/{account_id}/recoveries", response_model=RecoveriesPublic)
async def account_recoveries(session: SessionDep, tenant: TenantDep, account_id: AccountPath) -> RecoveriesPublic:
    """Your account's payments, each split between its lenders by share (largest remainder, ties by name), and
    each lender's total. 404 for an account not known to plans in your tenant."""
    found = await co_lending.servicer_recoveries(session, tenant=tenant, account_id=account_id)
    return _recoveries(account_id, found)


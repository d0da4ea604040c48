"""The offers a plan policy rule allows for an account (pure; docs/plans.md, "Negotiation").

- **instalments**: what is overdue in 2..N equal monthly instalments (``arithmetic.even_schedule``), none below the
  rule's minimum instalment;
- **deferral**: what is overdue in one payment, up to N days from today;
- **waiver**: up to X% of what is overdue waived (rounded down: never more than the policy allows), the rest in one
  payment or in up to the rule's instalments;
- **settlement**: at least Y% of the outstanding balance (rounded up: never less), in one payment; the rest of
  the balance is written off.

Each offer carries its schedule, total, the amount it writes off, the approvals it needs (``approvals.py``) and an
affordability verdict: with the customer's monthly income and expenses, affordable when its largest instalment is
at most the rule's share (50% by default) of the disposable income (income - expenses); without them, unknown.
Amounts are integer minor units of the account's currency; the schedules add up to their totals exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from services.plans.domain import approvals
from services.plans.domain.arithmetic import Instalment, even_schedule
from services.plans.domain.policy import BASIS, Rule
from services.plans.domain.schedule import PlanError

OfferKind = Literal["instalments", "deferral", "waiver", "settlement"]


@dataclass(frozen=True, slots=True)
class Offer:
    offer_id: str
    kind: OfferKind
    schedule: tuple[Instalment, ...]
    total_minor: int
    written_off_minor: int
    affordable: bool | None
    approvals_required: tuple[str, ...]


def affordable(largest_minor: int, *, income_minor: int | None, expenses_minor: int | None,
               share_bp: int) -> bool | None:
    """Whether an instalment of ``largest_minor`` is at most ``share_bp`` of the monthly disposable income
    (income - expenses); None without both."""
    if income_minor is None or expenses_minor is None:
        return None
    disposable = income_minor - expenses_minor
    return disposable > 0 and largest_minor * BASIS <= share_bp * disposable


def _ceil_share(amount_minor: int, bp: int) -> int:
    return -(-amount_minor * bp // BASIS)


def offers_for(rule: Rule, *, overdue_minor: int, outstanding_minor: int, today: date, co_lenders: Sequence[str],
               income_minor: int | None = None, expenses_minor: int | None = None) -> list[Offer]:
    """Every offer ``rule`` allows for an account owing ``overdue_minor`` now, of a balance of
    ``outstanding_minor`` (at least what is overdue), in this order: instalments (fewest first), deferral,
    waiver (in one first), settlement. Nothing overdue: no offers."""
    if overdue_minor <= 0:
        return []
    balance = max(outstanding_minor, overdue_minor)
    first_due = today + timedelta(days=rule.first_due_days)
    minimum = rule.instalments.min_instalment_minor if rule.instalments is not None else 0
    found: list[Offer] = []

    def add(offer_id: str, kind: OfferKind, schedule: Sequence[Instalment], written_off: int, owed: int,
            deferral_days: int = 0) -> None:
        terms = approvals.Terms(payments=len(schedule), deferral_days=deferral_days, written_off_minor=written_off,
                                owed_minor=owed)
        found.append(Offer(
            offer_id=offer_id, kind=kind, schedule=tuple(schedule),
            total_minor=sum(i.amount_minor for i in schedule), written_off_minor=written_off,
            affordable=affordable(max(i.amount_minor for i in schedule), income_minor=income_minor,
                                  expenses_minor=expenses_minor, share_bp=rule.affordability_bp),
            approvals_required=tuple(approvals.required(terms, rule, co_lenders=co_lenders))))

    def spread(total: int, count: int) -> list[Instalment] | None:
        try:
            return even_schedule(total, count, first_due=first_due, min_instalment_minor=minimum if count > 1 else 0)
        except PlanError:  # fewer minor units than instalments, or below the minimum instalment
            return None

    if rule.instalments is not None:
        for count in range(2, rule.instalments.max_months + 1):
            schedule = spread(overdue_minor, count)
            if schedule is None:
                break  # more instalments are only smaller
            add(f"instalments-{count}", "instalments", schedule, 0, overdue_minor)
    if rule.deferral is not None:
        days = rule.deferral.max_days
        add(f"deferral-{days}", "deferral", [Instalment(1, today + timedelta(days=days), overdue_minor)], 0,
            overdue_minor, deferral_days=days)
    if rule.waiver is not None:
        waived = overdue_minor * rule.waiver.max_bp // BASIS
        if 0 < waived < overdue_minor:
            for count in sorted({1, rule.waiver.max_months}):
                schedule = spread(overdue_minor - waived, count)
                if schedule is not None:
                    add(f"waiver-{count}", "waiver", schedule, waived, overdue_minor)
    if rule.settlement is not None:
        pay = _ceil_share(balance, rule.settlement.min_bp)
        if 0 < pay < balance:
            add("settlement", "settlement", [Instalment(1, first_due, pay)], balance - pay, balance)
    return found

"""Maker-checker (pure): which approvals an offer needs under a plan policy rule, which of them the maker's own
authority already covers, and what a decision does to an agreement waiting for them.

Steps are named ``supervisor`` (a supervisor of the servicer, never the maker) and ``co_lender:<tenant>`` (a
principal of that co-lender's tenant). An agreement waits (``pending_approval``) until every step is approved;
one rejection ends it (``rejected``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from services.plans.domain.policy import BASIS, Rule
from shared.domain import DomainError

SUPERVISOR = "supervisor"
CO_LENDER_PREFIX = "co_lender:"
StepStatus = Literal["pending", "approved", "rejected"]
Outcome = Literal["pending_approval", "agreed", "rejected"]


class MakerCannotApprove(DomainError):
    status = 403
    title = "The maker cannot approve"


class NotAnApprover(DomainError):
    status = 403
    title = "Not an approver of this agreement"


class NothingToDecide(DomainError):
    status = 409
    title = "No approval waiting for you"


@dataclass(frozen=True, slots=True)
class Terms:
    """What an offer asks for, as the authority levels see it: how many payments, a deferral's days, and how
    much of ``owed_minor`` (the overdue amount for a waiver, the balance for a settlement) it writes off."""

    payments: int
    deferral_days: int
    written_off_minor: int
    owed_minor: int


def co_lender_step(tenant: str) -> str:
    return f"{CO_LENDER_PREFIX}{tenant}"


def exceeds(part_minor: int, whole_minor: int, bp: int) -> bool:
    """Whether ``part`` is more than ``bp`` basis points of ``whole`` (exactly, in integers)."""
    return part_minor * BASIS > bp * whole_minor


def required(terms: Terms, rule: Rule, *, co_lenders: Iterable[str]) -> list[str]:
    """The approvals an offer needs: ``supervisor`` when it is beyond the agent's authority (more instalments,
    a longer deferral or a larger write-off than the rule lets an agent agree), and each co-lender's when it
    writes off more than the rule's ``co_lender_above`` share of what is owed. Only grows with the write-off."""
    agent = rule.agent
    steps = []
    if ((terms.payments > 1 and terms.payments > agent.max_months)
            or terms.deferral_days > agent.max_deferral_days
            or exceeds(terms.written_off_minor, terms.owed_minor, agent.max_write_off_bp)):
        steps.append(SUPERVISOR)
    if (rule.co_lender_above_bp is not None and terms.written_off_minor > 0
            and exceeds(terms.written_off_minor, terms.owed_minor, rule.co_lender_above_bp)):
        steps += [co_lender_step(t) for t in sorted(set(co_lenders))]
    return steps


def waiting_after_maker(steps: Iterable[str], maker_roles: frozenset[str]) -> list[str]:
    """The steps still to approve once the maker agreed: a supervisor maker's authority covers ``supervisor``
    (an offer within the maker's authority is agreed at once); a co-lender's step is never the maker's."""
    return [s for s in steps if not (s == SUPERVISOR and SUPERVISOR in maker_roles)]


def step_of(*, approver_tenant: str, approver_roles: frozenset[str], servicer: str) -> str:
    """The step an approver may decide: a supervisor of the servicer decides ``supervisor``; a principal of
    another tenant decides its own co-lender step (whether it is a co-lender the caller checks)."""
    if approver_tenant == servicer:
        if SUPERVISOR not in approver_roles:
            raise NotAnApprover("Only a supervisor approves an agreement beyond an agent's authority; your API "
                                "key's principal is not one.")
        return SUPERVISOR
    return co_lender_step(approver_tenant)


def decide(steps: Mapping[str, StepStatus], *, step: str, approve: bool, approver: str, approver_tenant: str,
           maker: str | None, servicer: str) -> dict[str, StepStatus]:
    """The steps after ``approver`` decided ``step``. Refused: the maker deciding its own agreement
    (``MakerCannotApprove``), a step the agreement does not wait for (``NothingToDecide``)."""
    if approver_tenant == servicer and maker is not None and approver == maker:
        raise MakerCannotApprove(f"{approver!r} made this agreement and cannot decide it: another supervisor "
                                 "must (four eyes).")
    if steps.get(step) != "pending":
        waiting = ", ".join(s for s, status in sorted(steps.items()) if status == "pending") or "nothing"
        raise NothingToDecide(f"This agreement does not wait for {step!r} (it waits for {waiting}).")
    return {**steps, step: "approved" if approve else "rejected"}


def outcome(steps: Mapping[str, StepStatus]) -> Outcome:
    """``rejected`` once any step is; ``agreed`` once all are approved (or none were needed); else pending."""
    if any(s == "rejected" for s in steps.values()):
        return "rejected"
    return "agreed" if all(s == "approved" for s in steps.values()) else "pending_approval"

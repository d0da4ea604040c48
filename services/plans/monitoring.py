"""Plan monitoring: an agreed plan with an instalment still unpaid at the end of its due date plus the grace days
(the due date's day in the account's time zone) is broken and announced (plans.plan-event.v1 ``broken``: the
scheduler resumes the treatment, compliance lifts its hold). A plan paid off is completed by
``service.apply_payments`` and never reaches here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.plans import service
from services.plans.db import promises as promise_repo
from services.plans.db import repository as repo
from services.plans.domain.promises import deadline, latest_missable_due_date
from services.plans.domain.states import PLAN, PlanEvent, PlanStatus
from shared.uow import UnitOfWork

GRACE_DAYS = 3  # PLANS_PLAN_GRACE_DAYS' default


async def break_missed_plans(uow: UnitOfWork, *, now: datetime, grace_days: int = GRACE_DAYS,
                             limit: int = 500) -> int:
    """Claim a batch of agreed plans with an instalment unpaid past its grace and break them; returns how many
    broke. Claimed by a cut-off in UTC days that every zone has passed (a zone is at most a day ahead of UTC), then
    checked exactly in the account's zone: a plan claimed too early is left agreed for a later tick, and the claim
    goes on past it while whole batches are too early."""
    unpaid_due_by = latest_missable_due_date(now=now, grace_days=grace_days)
    broken = 0
    # plans claimed but not to break now (too early in their zone): claimed past on the next claim, so a batch full
    # of them never holds back the plans that are due behind them
    not_yet: list[str] = []
    while True:
        rows = await promise_repo.claim_missed_plans(uow.session, unpaid_due_by=unpaid_due_by, limit=limit,
                                                     skip=not_yet)
        claimed_broke = await _break_due(uow, rows, now=now, grace_days=grace_days, not_yet=not_yet)
        broken += claimed_broke
        if len(rows) < limit or claimed_broke > 0:
            break
    await uow.session.flush()
    return broken


async def _break_due(uow: UnitOfWork, rows: list[Any], *, now: datetime, grace_days: int, not_yet: list[str]) -> int:
    broken = 0
    for row in rows:
        plan = row.Plan
        # the claim's earliest unpaid date may be from a snapshot older than its lock (a payment allocated and
        # committed while the claim ran): decide on the instalments as they are now, the plan being ours
        schedule = await repo.instalments(uow.session, plan.plan_id)
        unpaid = [i.due_date for i in schedule if i.status != "paid"]
        if (plan.status != PlanStatus.AGREED.value or not unpaid
                or now < deadline(day=min(unpaid), grace_days=grace_days, time_zone=row.time_zone)):
            not_yet.append(plan.plan_id)
            continue
        plan.status = PLAN.apply(PlanStatus(plan.status), PlanEvent.BREAK).value
        plan.updated_at = now
        service._announce(uow, plan, schedule, "broken")
        broken += 1
    return broken

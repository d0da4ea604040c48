"""Plan monitoring: an agreed plan with an instalment still unpaid at the end of its due date plus the grace days
(the due date's day in the account's time zone) is broken and announced (plans.plan-event.v1 ``broken``: the
scheduler resumes the treatment, compliance lifts its hold). A plan paid off is completed by
``service.apply_payments`` and never reaches here."""

from __future__ import annotations

from datetime import datetime

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
    checked exactly in the account's zone: a plan claimed too early is left agreed for a later tick."""
    unpaid_due_by = latest_missable_due_date(now=now, grace_days=grace_days)
    broken = 0
    for row in await promise_repo.claim_missed_plans(uow.session, unpaid_due_by=unpaid_due_by, limit=limit):
        plan = row.Plan
        if now < deadline(day=row.earliest, grace_days=grace_days, time_zone=row.time_zone):
            continue
        plan.status = PLAN.apply(PlanStatus(plan.status), PlanEvent.BREAK).value
        plan.updated_at = now
        service._announce(uow, plan, await repo.instalments(uow.session, plan.plan_id), "broken")
        broken += 1
    await uow.session.flush()
    return broken

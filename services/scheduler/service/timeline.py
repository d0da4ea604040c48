"""Dry run of an account's timeline (``GET /v1/accounts/{id}/timeline``): the steps a strategy would take over the
next days if nothing changed (no payment, every contact reached the customer), beside the steps of this delinquency
cycle already made, with the compliance verdicts and outcomes they met. Stores and sends nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from services.scheduler.db.models import Treatment, TreatmentStep
from services.scheduler.domain.states import TreatmentStatus
from services.scheduler.domain.strategies.document import Strategy
from services.scheduler.domain.strategies.interpreter import Account, step_for
from services.scheduler.domain.timeline import contact_id_for
from services.scheduler.service import strategies
from shared.domain import DomainError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TimelineEntry(BaseModel):
    state: Literal["made", "planned"] = Field(description="made: the step exists (see status, verdict, outcome); "
                                                          "planned: what the strategy would do")
    on: date = Field(description="The calendar day (the due date plus the step's DPD)")
    days_past_due: int
    step: str
    channel: str
    template_id: str
    contact_id: str
    due_at: datetime | None = Field(None, description="When it falls due: its local hour on its day (the start of "
                                                      "that day for a step that names no hour); made: as stored")
    status: str | None = Field(None, description="made: the step's status")
    verdict: str | None = Field(None, description="made: the last verdict or outcome it met, as recorded")
    outcome: str | None = None
    strategy: str | None = Field(None, description="name@version that planned it")
    reason: str | None = Field(None, description="planned: which cell and step of the strategy")


class UnknownStrategy(DomainError):
    status = 404
    title = "No such strategy"


async def strategy_for(session: AsyncSession, treatment: Treatment, text: str | None) -> tuple[str, str, Strategy]:
    """The strategy to dry-run (name@version, or the one the account follows now), with its ref and arm."""
    if text is not None:
        ref = strategies.parse_ref(text)
        found = await strategies.strategy_of(session, treatment.tenant, ref) if ref else None
        if found is None:
            raise UnknownStrategy(f"No strategy {text!r} in your tenant (GET /v1/strategies lists them).")
        return found.ref, "dry-run", found
    followed = (await strategies.current(session, {treatment.tenant}))[treatment.tenant]
    borrower = strategies.borrower_of(borrower_key=treatment.borrower_key, customer_id=treatment.customer_id)
    arm, strategy, _ = followed.follow(borrower=borrower, segment=treatment.segment)
    return strategy.ref, arm, strategy


def entries(strategy: Strategy, t: Treatment, steps: Sequence[TreatmentStep], *, days: int) -> list[TimelineEntry]:
    made = [s for s in steps if s.due_date == t.due_date]
    out = [TimelineEntry(state="made", on=s.due_date + timedelta(days=s.days_past_due), days_past_due=s.days_past_due,
                         step=s.step, channel=s.channel, template_id=s.template_id, contact_id=s.contact_id,
                         due_at=s.due_at, status=s.status, verdict=s.last_reason or None, outcome=s.outcome,
                         strategy=s.strategy) for s in made]
    if t.status != TreatmentStatus.ACTIVE.value:
        return out
    seen = {s.contact_id for s in made}
    for ahead in range(days + 1):
        dpd = t.days_past_due + ahead
        account = Account(segment=t.segment, days_past_due=dpd, due_date=t.due_date, overdue_minor=t.overdue_minor,
                          time_zone=t.time_zone, has_phone=t.phone_sealed is not None,
                          has_email=t.email_sealed is not None, has_address=t.address_sealed is not None)
        plan = step_for(strategy, account, now=_EPOCH)
        if plan is None:
            continue
        contact_id = contact_id_for(tenant=t.tenant, account_id=t.account_id, step=plan.step, due_date=t.due_date)
        if contact_id in seen:
            continue
        seen.add(contact_id)
        out.append(TimelineEntry(state="planned", on=t.due_date + timedelta(days=dpd), days_past_due=dpd,
                                 step=plan.step, channel=plan.channel.value, template_id=plan.template,
                                 contact_id=contact_id, due_at=plan.due_at if plan.due_at > _EPOCH else None,
                                 strategy=strategy.ref, reason=plan.reason))
    return out


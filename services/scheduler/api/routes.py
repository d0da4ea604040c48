"""Treatment view for partners and agents."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel
from sqlalchemy import select

from services.scheduler.db.models import Treatment, TreatmentStep
from shared.http import ProblemError, TenantDep
from shared.service import runtime_of

router = APIRouter(prefix="/v1", tags=["treatments"])


class StepPublic(BaseModel):
    contact_id: str
    step: str
    channel: str
    status: str
    attempt: int
    due_at: datetime
    last_reason: str


class TreatmentPublic(BaseModel):
    account_id: str
    customer_id: str
    segment: str
    days_past_due: int
    overdue_minor: int
    currency: str
    status: str
    status_reason: str
    steps: list[StepPublic]


@router.get("/treatments/{account_id}", response_model=TreatmentPublic)
async def get_treatment(request: Request, tenant: TenantDep, account_id: str) -> TreatmentPublic:
    """The account's treatment state and steps (your tenant only)."""
    async with runtime_of(request.app).sessions() as session:
        treatment = await session.get(Treatment, (tenant, account_id))
        if treatment is None:
            raise ProblemError(404, "Not found", f"No treatment for account {account_id!r} in your tenant.")
        steps = (await session.execute(
            select(TreatmentStep).where(TreatmentStep.tenant == tenant,  # type: ignore[arg-type]
                                        TreatmentStep.account_id == account_id)  # type: ignore[arg-type]
            .order_by(TreatmentStep.created_at))).scalars().all()  # type: ignore[arg-type]
    return TreatmentPublic(
        **treatment.model_dump(include={"account_id", "customer_id", "segment", "days_past_due", "overdue_minor",
                                        "currency", "status", "status_reason"}),
        steps=[StepPublic.model_validate(s, from_attributes=True) for s in steps])

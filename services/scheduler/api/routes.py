"""Treatment view for partners and agents."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from services.scheduler import service
from shared.deps import SessionDep, TenantDep

router = APIRouter(prefix="/v1", tags=["treatments"])


class StepPublic(BaseModel):
    contact_id: str
    step: str
    channel: str
    status: str
    attempt: int
    due_at: datetime
    last_reason: str = Field(description="Why it is where it is: the strategy cell that planned it, then the last "
                                         "compliance verdict or outcome")
    strategy: str | None = Field(None, description="name@version of the strategy that asked for it")
    arm: str | None = Field(None, description="The experiment arm (`champion` when none runs)")
    experiment: str | None = None


class TreatmentPublic(BaseModel):
    account_id: str
    customer_id: str
    segment: str
    days_past_due: int
    overdue_minor: int
    currency: str
    status: str
    status_reason: str
    strategy: str | None = Field(None, description="name@version the treatment follows (docs/strategies.md)")
    arm: str | None = None
    experiment: str | None = None
    steps: list[StepPublic]


@router.get("/treatments/{account_id}", response_model=TreatmentPublic)
async def get_treatment(session: SessionDep, tenant: TenantDep, account_id: str) -> TreatmentPublic:
    """The account's treatment state and steps (your tenant only)."""
    treatment, steps = await service.get_treatment(session, tenant=tenant, account_id=account_id)
    return TreatmentPublic(
        **treatment.model_dump(include={"account_id", "customer_id", "segment", "days_past_due", "overdue_minor",
                                        "currency", "status", "status_reason", "strategy", "arm",
                                        "experiment"}),
        steps=[StepPublic.model_validate(s, from_attributes=True) for s in steps])

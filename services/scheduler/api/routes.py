"""Treatment view for partners and agents."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

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
async def get_treatment(session: SessionDep, tenant: TenantDep, account_id: str) -> TreatmentPublic:
    """The account's treatment state and steps (your tenant only)."""
    treatment, steps = await service.get_treatment(session, tenant=tenant, account_id=account_id)
    return TreatmentPublic(
        **treatment.model_dump(include={"account_id", "customer_id", "segment", "days_past_due", "overdue_minor",
                                        "currency", "status", "status_reason"}),
        steps=[StepPublic.model_validate(s, from_attributes=True) for s in steps])

"""Decision log and the synchronous check agents call before a contact they start themselves."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from services.compliance import service
from shared.contracts.events import Channel, TimeZone
from shared.deps import SessionDep, TenantDep

router = APIRouter(prefix="/v1", tags=["compliance"])


class DecisionPublic(BaseModel):
    decision_id: str
    contact_id: str
    attempt: int
    account_id: str
    channel: str
    outcome: str
    rule_id: str
    reason: str
    retry_at: datetime | None
    rules_evaluated: list[dict[str, Any]]
    decided_at: datetime


@router.get("/decisions", response_model=list[DecisionPublic],
            responses={400: {"description": "Filter required: give contact_id or account_id"}})
async def list_decisions(session: SessionDep, tenant: TenantDep, contact_id: str | None = None,
                         account_id: str | None = None,
                         limit: int = Query(100, ge=1, le=1000)) -> list[DecisionPublic]:
    """Decisions of your tenant, newest first; filter by contact or account."""
    rows = await service.decision_log(session, tenant=tenant, contact_id=contact_id, account_id=account_id,
                                      limit=limit)
    return [DecisionPublic.model_validate(r, from_attributes=True) for r in rows]


class CheckIn(BaseModel):
    channel: Channel
    time_zone: TimeZone


class CheckOut(BaseModel):
    outcome: str
    rule_id: str
    reason: str
    retry_at: datetime | None


@router.post("/checks", response_model=CheckOut)
async def check_contact(tenant: TenantDep, body: CheckIn) -> CheckOut:
    """May an agent contact this customer now? Same rules as automated contacts."""
    decision = service.check_now(channel=body.channel, time_zone=body.time_zone)
    return CheckOut(outcome=decision.outcome, rule_id=decision.rule_id, reason=decision.reason,
                    retry_at=decision.retry_at)

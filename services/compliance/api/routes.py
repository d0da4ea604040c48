"""Decision log and the synchronous check agents call before a contact they start themselves."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlalchemy import select

from services.compliance.db.models import ContactDecision
from services.compliance.domain.rules import decide
from shared.contracts.events import Channel, TimeZone
from shared.http import ProblemError, TenantDep
from shared.service import runtime_of

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


@router.get("/decisions", response_model=list[DecisionPublic])
async def list_decisions(request: Request, tenant: TenantDep, contact_id: str | None = None,
                         account_id: str | None = None,
                         limit: int = Query(100, ge=1, le=1000)) -> list[DecisionPublic]:
    """Decisions of your tenant, newest first; filter by contact or account."""
    if contact_id is None and account_id is None:
        raise ProblemError(400, "Filter required", "Give contact_id or account_id.")
    query = select(ContactDecision).where(ContactDecision.tenant == tenant)  # type: ignore[arg-type]
    if contact_id is not None:
        query = query.where(ContactDecision.contact_id == contact_id)  # type: ignore[arg-type]
    if account_id is not None:
        query = query.where(ContactDecision.account_id == account_id)  # type: ignore[arg-type]
    async with runtime_of(request.app).sessions() as session:
        rows = (await session.execute(
            query.order_by(ContactDecision.decided_at.desc()).limit(limit))).scalars().all()  # type: ignore[attr-defined]
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
    decision = decide(channel=body.channel, time_zone=body.time_zone, now_utc=datetime.now(UTC),
                      already_approved=False)
    return CheckOut(outcome=decision.outcome, rule_id=decision.rule_id, reason=decision.reason,
                    retry_at=decision.retry_at)

"""Contact history for partners, and the SMS provider's delivery-receipt webhook."""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select, update

from services.channels.consumers.dispatch import outcome_event
from services.channels.db.models import ContactAttempt
from shared.http import ProblemError, TenantDep
from shared.messaging import add_to_outbox
from shared.service import runtime_of

router = APIRouter(prefix="/v1", tags=["channels"])


class AttemptPublic(BaseModel):
    contact_id: str
    account_id: str
    channel: str
    template_id: str
    status: str
    tries: int
    provider_ref: str | None
    detail: str | None
    created_at: datetime
    updated_at: datetime


@router.get("/contacts", response_model=list[AttemptPublic])
async def list_contacts(request: Request, tenant: TenantDep, account_id: str,
                        limit: int = Query(100, ge=1, le=1000)) -> list[AttemptPublic]:
    """Contact history of one of your accounts, newest first."""
    async with runtime_of(request.app).sessions() as session:
        rows = (await session.execute(
            select(ContactAttempt).where(ContactAttempt.tenant == tenant,  # type: ignore[arg-type]
                                         ContactAttempt.account_id == account_id)  # type: ignore[arg-type]
            .order_by(ContactAttempt.created_at.desc()).limit(limit))).scalars().all()  # type: ignore[attr-defined]
    return [AttemptPublic.model_validate(r, from_attributes=True) for r in rows]


class Receipt(BaseModel):
    message_id: str
    client_ref: str = Field(description="Our contact_id")
    status: Literal["delivered", "failed"]
    delivered_at: datetime | None = None


class Receipts(BaseModel):
    receipts: list[Receipt] = Field(max_length=1000)


@router.post("/webhooks/sms/receipts", tags=["webhooks"])
async def sms_receipts(request: Request, body: Receipts, token: str = "") -> dict[str, int]:
    """Delivery receipts from the SMS provider. The receipt URL carries a shared token."""
    runtime = runtime_of(request.app)
    if not hmac.compare_digest(token, runtime.settings.webhook_token):  # type: ignore[attr-defined]
        raise ProblemError(401, "Unauthorized", "Unknown webhook token.")
    updated = 0
    async with runtime.sessions() as session, session.begin():
        for receipt in body.receipts:
            row = (await session.execute(
                update(ContactAttempt)
                # A receipt can overtake our own record of the send ('dispatching'): accept it then too.
                .where(ContactAttempt.contact_id == receipt.client_ref,  # type: ignore[arg-type]
                       ContactAttempt.channel == "sms",  # type: ignore[arg-type]
                       ContactAttempt.status.in_(("dispatching", "sent")))  # type: ignore[attr-defined]
                .values(status=receipt.status, provider_ref=receipt.message_id)
                .returning(ContactAttempt))).scalars().first()
            if row is None:
                continue
            updated += 1
            if receipt.status == "failed":
                await add_to_outbox(session, [outcome_event(row, "failed", provider_ref=receipt.message_id,
                                                            detail="provider reported the SMS undelivered")])
    runtime.relay.wake()
    return {"updated": updated}

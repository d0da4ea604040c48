"""Contact history for partners, and the SMS provider's delivery-receipt webhook."""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from services.channels import service
from services.channels.settings import Settings
from shared.deps import SessionDep, SettingsDep, TenantDep, UowDep
from shared.http import ProblemError

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
async def list_contacts(session: SessionDep, tenant: TenantDep, account_id: str,
                        limit: int = Query(100, ge=1, le=1000)) -> list[AttemptPublic]:
    """Contact history of one of your accounts, newest first."""
    rows = await service.contact_history(session, tenant=tenant, account_id=account_id, limit=limit)
    return [AttemptPublic.model_validate(r, from_attributes=True) for r in rows]


class Receipt(BaseModel):
    message_id: str
    client_ref: str = Field(description="Our contact_id")
    status: Literal["delivered", "failed"]
    delivered_at: datetime | None = None


class Receipts(BaseModel):
    receipts: list[Receipt] = Field(max_length=1000)


def webhook_token_valid(settings: SettingsDep, token: str = "") -> None:
    """The receipt URL carries a shared token (CHANNELS_WEBHOOK_TOKEN)."""
    expected = settings.webhook_token if isinstance(settings, Settings) else ""
    # bytes: compare_digest refuses str with non-ASCII characters (a 500 for a hostile token)
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        raise ProblemError(401, "Unauthorized", "Unknown webhook token.")


@router.post("/webhooks/sms/receipts", tags=["webhooks"], dependencies=[Depends(webhook_token_valid)])
async def sms_receipts(uow: UowDep, body: Receipts) -> dict[str, int]:
    """Delivery receipts from the SMS provider. The receipt URL carries a shared token."""
    updated = await service.record_receipts(uow, receipts=[
        service.Receipt(contact_id=r.client_ref, provider_ref=r.message_id, delivered=r.status == "delivered")
        for r in body.receipts])
    await uow.commit()
    return {"updated": updated}

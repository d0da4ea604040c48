"""Signed webhooks over REST (docs/partners.md, "Webhooks"): subscribe an endpoint to plans' topics, list,
delete, read a subscription's delivery log, replay a delivery. Changes need the `partner` or `admin` role and
a reason (audited)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from services.plans import webhooks
from services.plans.db.co_lending import WebhookDelivery, WebhookSubscription
from services.plans.domain.signing import MAX_URL_LENGTH
from services.plans.settings import Settings
from shared.deps import CipherDep, Principal, Role, SessionDep, SettingsDep, TenantDep, UowDep, require

router = APIRouter(tags=["webhooks"])

WebhookIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$",
                                    description="Your name for the subscription")]
DeliveryIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")]
Reason = Annotated[str, Query(min_length=1, max_length=500, pattern=r"^[^\x00-\x1f\x7f]+$",
                              description="Why (kept in the audit log)")]
Partner = Annotated[Principal, require(Role.PARTNER, Role.ADMIN)]


class WebhookPut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH, examples=["https://partner.example/webhooks/plans"],
                     description="http or https; no credentials; a public address in production")
    topics: list[str] = Field(min_length=1, max_length=len(webhooks.WEBHOOK_TOPICS),
                              examples=[["plans.plan-event.v1", "plans.write-off.v1"]],
                              description=f"Any of {', '.join(webhooks.WEBHOOK_TOPICS)}")
    reason: str = Field(min_length=1, max_length=500, pattern=r"^[^\x00-\x1f\x7f]+$")


class WebhookPublic(BaseModel):
    webhook_id: str
    url: str
    topics: list[str]
    created_by: str
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookPublic):
    secret: str | None = Field(description="`whsec_...`: shown once, when the subscription is created; verify "
                                           "each delivery's Webhook-Signature with it. Null on a change.")


class DeliveryPublic(BaseModel):
    delivery_id: str
    webhook_id: str
    event_id: str
    topic: str
    status: str = Field(description="pending, delivered, failed or cancelled")
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None = Field(description="When it is attempted next (pending only)")
    delivered_at: datetime | None
    created_at: datetime


def _public(s: WebhookSubscription) -> WebhookPublic:
    return WebhookPublic(webhook_id=s.webhook_id, url=s.url, topics=list(s.topics), created_by=s.created_by,
                         created_at=s.created_at, updated_at=s.updated_at)  # type: ignore[arg-type]


def _delivery(d: WebhookDelivery) -> DeliveryPublic:
    return DeliveryPublic(delivery_id=d.delivery_id, webhook_id=d.webhook_id, event_id=d.event_id, topic=d.topic,
                          status=d.status, attempts=d.attempts, last_status_code=d.last_status_code,
                          last_error=d.last_error,
                          next_attempt_at=d.next_attempt_at if d.status == "pending" else None,
                          delivered_at=d.delivered_at, created_at=d.created_at)  # type: ignore[arg-type]


@router.put("/v1/webhooks/{webhook_id}", response_model=WebhookCreated,
            responses={200: {"description": "Changed (URL, topics); the secret is kept and not shown"},
                       201: {"description": "Created: the secret is in the response, once"}})
async def put_webhook(uow: UowDep, response: Response, principal: Partner, cipher: CipherDep,
                      settings: SettingsDep, webhook_id: WebhookIdPath, body: WebhookPut) -> WebhookCreated:
    """Subscribe an endpoint to plans' topics (201, with its secret, once), or change its URL and topics (200).
    A URL that is not http(s), carries credentials, is longer than 2,000 characters or (in production) names a
    private or loopback address is refused (422) with every reason; nothing is stored."""
    allow_private = settings.webhook_allow_private if isinstance(settings, Settings) else False
    done = await webhooks.subscribe(uow, principal=principal, cipher=cipher, webhook_id=webhook_id, url=body.url,
                                    wanted=body.topics, reason=body.reason, allow_private=allow_private)
    public = _public(done.subscription)
    await uow.commit()
    response.status_code = 201 if done.created else 200
    return WebhookCreated(**public.model_dump(), secret=done.secret)


@router.get("/v1/webhooks", response_model=list[WebhookPublic])
async def list_webhooks(session: SessionDep, tenant: TenantDep) -> list[WebhookPublic]:
    """Your subscriptions (never their secrets)."""
    return [_public(s) for s in await webhooks.subscriptions(session, tenant=tenant)]


@router.delete("/v1/webhooks/{webhook_id}", status_code=204)
async def delete_webhook(uow: UowDep, principal: Partner, webhook_id: WebhookIdPath, reason: Reason) -> Response:
    """Delete a subscription: its pending deliveries are cancelled; its log stays readable."""
    await webhooks.unsubscribe(uow, principal=principal, webhook_id=webhook_id, reason=reason)
    await uow.commit()
    return Response(status_code=204)


@router.get("/v1/webhooks/{webhook_id}/deliveries", response_model=list[DeliveryPublic])
async def webhook_deliveries(session: SessionDep, tenant: TenantDep, webhook_id: WebhookIdPath,
                             limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[DeliveryPublic]:
    """The subscription's delivery log, newest first: event, topic, status, attempts, the last answer."""
    return [_delivery(d) for d in await webhooks.delivery_log(session, tenant=tenant, webhook_id=webhook_id,
                                                               limit=limit)]


@router.post("/v1/webhook-deliveries/{delivery_id}/replay", response_model=DeliveryPublic)
async def replay_delivery(uow: UowDep, principal: Partner, delivery_id: DeliveryIdPath, reason: Reason
                          ) -> DeliveryPublic:
    """Send a delivery again from its first attempt (delivered, failed or pending alike), due now."""
    found = await webhooks.replay(uow, principal=principal, delivery_id=delivery_id, reason=reason)
    public = _delivery(found)
    await uow.commit()
    return public

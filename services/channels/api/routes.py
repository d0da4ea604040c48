"""Contact history for partners, and the SMS provider's signed delivery-receipt webhook."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from services.channels import service
from services.channels.domain import signatures
from services.channels.metrics import WEBHOOKS_REFUSED
from services.channels.settings import Settings
from shared.deps import RuntimeDep, SessionDep, SettingsDep, TenantDep, UowDep
from shared.http import ProblemError, problem

router = APIRouter(prefix="/v1", tags=["channels"])

# Every stored status (domain/states.py AttemptStatus, less 'new': the state before a row exists).
StoredStatus = Literal["sending", "dispatching", "sent", "delivered", "failed", "unknown", "task_created"]
DEFERRED_RETRY_AFTER_S = 1


class AttemptPublic(BaseModel):
    contact_id: str
    account_id: str
    account_ref: str | None
    channel: str
    template_id: str
    status: str
    tries: int
    provider_ref: str | None
    detail: str | None
    created_at: datetime
    updated_at: datetime


@router.get("/contacts", response_model=list[AttemptPublic])
async def list_contacts(session: SessionDep, tenant: TenantDep, account_id: str | None = None,
                        status: StoredStatus | None = None,
                        limit: int = Query(100, ge=1, le=1000)) -> list[AttemptPublic]:
    """Your contact attempts, newest first: those of one account (`account_id`), those in one status
    (`status`, e.g. `unknown`: SMS whose final status the provider never gave), or both. Give at least one."""
    if account_id is None and status is None:
        raise ProblemError(422, "Invalid request", "Give account_id, status, or both.")
    rows = await service.contact_history(session, tenant=tenant, account_id=account_id, status=status, limit=limit)
    return [AttemptPublic.model_validate(r, from_attributes=True) for r in rows]


class Receipt(BaseModel):
    message_id: str = Field(min_length=1, max_length=255, description="The provider's reference for the SMS")
    client_ref: str = Field(min_length=1, max_length=255, description="Our contact_id")
    status: Literal["delivered", "failed"]
    delivered_at: datetime | None = None


class Receipts(BaseModel):
    receipts: list[Receipt] = Field(max_length=1000)


class ReceiptsAnswer(BaseModel):
    updated: int = Field(description="Attempts whose status changed")
    ignored: int = Field(description="Receipts that changed nothing: unknown reference, another provider "
                                     "account's message, late or repeated")
    deferred: int = Field(0, description="Receipts for sends not recorded yet; with any, the answer is a 503: "
                                         "send the batch again")


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON schema with its ``$defs`` inlined (for an OpenAPI request body declared by hand)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return walk(defs[node["$ref"].rsplit("/", 1)[1]])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)  # type: ignore[no-any-return]


_SIGNED_HEADERS = [
    {"name": signatures.ACCOUNT_HEADER, "in": "header", "required": True, "schema": {"type": "string"},
     "description": "The provider account that signed the request (one of CHANNELS_SMS_WEBHOOK_SECRETS)"},
    {"name": signatures.TIMESTAMP_HEADER, "in": "header", "required": True, "schema": {"type": "string"},
     "description": "Unix seconds when it was signed; refused outside CHANNELS_SMS_WEBHOOK_WINDOW_S"},
    {"name": signatures.SIGNATURE_HEADER, "in": "header", "required": True, "schema": {"type": "string"},
     "description": "sha256=<hex HMAC-SHA256 of '<X-Timestamp>.<raw body>' with the account's secret>"},
]


async def _signed(request: Request, settings: Any) -> tuple[bytes, str, Settings]:
    """The raw body of a webhook, the provider account that signed it and the channels settings; a 401
    problem otherwise."""
    if not isinstance(settings, Settings):  # never: the channels app is built with its own settings
        raise ProblemError(401, "Unauthorized", "No webhook secrets are configured.")
    raw = await request.body()
    try:
        account = signatures.verify(
            secrets=settings.sms_webhook_secrets, account=request.headers.get(signatures.ACCOUNT_HEADER),
            timestamp=request.headers.get(signatures.TIMESTAMP_HEADER),
            signature_value=request.headers.get(signatures.SIGNATURE_HEADER), body=raw, now=time.time(),
            window_s=settings.sms_webhook_window_s)
    except signatures.SignatureError as exc:
        WEBHOOKS_REFUSED.labels(exc.reason).inc()
        raise ProblemError(401, "Unauthorized", str(exc)) from None
    return raw, account, settings


@router.post("/webhooks/sms/receipts", tags=["webhooks"], response_model=ReceiptsAnswer,
             responses={401: {"description": "Missing, malformed, stale or wrong signature: nothing changed"},
                        503: {"description": "Some receipts are for sends not recorded yet: retry the batch"}},
             openapi_extra={"parameters": _SIGNED_HEADERS, "requestBody": {"required": True, "content": {
                 "application/json": {"schema": _inline(Receipts.model_json_schema())}}}})
async def sms_receipts(request: Request, uow: UowDep, settings: SettingsDep) -> Any:
    """Delivery receipts from the SMS provider, signed with the provider account's secret (HMAC-SHA256
    over `X-Timestamp` + "." + the raw body). A receipt counts only for an SMS of ours with that provider
    reference, sent through that account; the others are ignored (counted, never an error)."""
    raw, account, settings = await _signed(request, settings)
    try:
        body = Receipts.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None
    tally = await service.record_receipts(uow, receipts=[
        service.Receipt(contact_id=r.client_ref, provider_ref=r.message_id, delivered=r.status == "delivered",
                        account=account) for r in body.receipts], legacy_account=settings.sms_account)
    await uow.commit()
    answer = ReceiptsAnswer(updated=tally.updated, ignored=tally.ignored, deferred=tally.deferred)
    if tally.deferred:
        response: JSONResponse = problem(503, "Service unavailable",
                                         f"{tally.deferred} receipts are for sends not recorded yet; send the batch "
                                         "again (the others are recorded; repeating them changes nothing).",
                                         updated=answer.updated, ignored=answer.ignored, deferred=answer.deferred)
        response.headers["Retry-After"] = str(DEFERRED_RETRY_AFTER_S)
        return response
    return answer


class InboundSms(BaseModel):
    """A customer's SMS to us, as the provider posts it (mobile-originated)."""

    message_id: str = Field(min_length=1, max_length=128)
    sender: str = Field(alias="from", min_length=3, max_length=32, description="The customer's number, E.164")
    body: str = Field(max_length=1600)
    received_at: datetime


class InboundBatch(BaseModel):
    messages: list[InboundSms] = Field(max_length=1000)


class InboundAnswer(BaseModel):
    opted_out: int
    other: int
    repeated: int
    unknown: int


@router.post("/webhooks/sms/inbound", tags=["webhooks"], response_model=InboundAnswer,
             responses={401: {"description": "Missing, malformed, stale or wrong signature: nothing changed"}},
             openapi_extra={"parameters": _SIGNED_HEADERS, "requestBody": {"required": True, "content": {
                 "application/json": {"schema": _inline(InboundBatch.model_json_schema())}}}})
async def sms_inbound(request: Request, uow: UowDep, settings: SettingsDep, runtime: RuntimeDep) -> Any:
    """Customers' replies to our SMS, from the provider, signed like receipts. A reply that is an opt-out
    (`TD`, `退订`, `STOP`, `UNSUBSCRIBE` and close variants) suppresses that number at once for every tenant
    that texted it (announced on `channels.opt-out.v1`) and is confirmed by one SMS; other replies are
    only counted. The number and the text are never stored."""
    raw, account, settings = await _signed(request, settings)
    try:
        batch = InboundBatch.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None
    tally = await service.record_replies(
        uow, replies=[service.Reply(m.message_id, m.sender, m.body, m.received_at, account) for m in batch.messages],
        destination_key_of=lambda channel, destination: runtime.identity.contact_point_key(
            channel=channel, destination=destination),
        seal=lambda value, tenant: runtime.cipher.seal(value, context=tenant),
        lookback=timedelta(days=settings.opt_out_lookback_days))
    await uow.commit()
    return InboundAnswer(opted_out=tally.opted_out, other=tally.other, repeated=tally.repeated, unknown=tally.unknown)

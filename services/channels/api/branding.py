"""A tenant's branding over REST: the lender name its messages carry (per locale; the zh-CN one also signs its
SMS, 【...】), its help line and optionally a complaint line. Versioned: every version is kept with who published
it and why, the newest applies to the tenant's next messages (within seconds on every replica). A name the
content lint refuses (one posing as a court or the police, a threat ...) or a phone number that is none is
refused with 422 and the findings; nothing is stored."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from services.channels import service
from services.channels.domain import templates
from shared.audit import record_change
from shared.deps import Principal, Role, SessionDep, TenantDep, UowDep, require
from shared.http import ProblemError

router = APIRouter(prefix="/v1", tags=["branding"])

Reason = Annotated[str, Field(min_length=1, max_length=500)]
OfficerOrSupervisor = Annotated[Principal, require(Role.COMPLIANCE, Role.SUPERVISOR)]
Phone = Annotated[str, Field(min_length=3, max_length=32)]


class BrandingIn(BaseModel):
    lender: dict[str, Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        description="The lender's name per template locale: both \"zh-CN\" and \"en\" (1-60 characters of plain "
                    "text; the zh-CN one signs SMS as 【name】)",
        examples=[{"zh-CN": "示例银行", "en": "Example Bank"}])
    help_line: Phone = Field(description="A phone number (read as Chinese without a country code); stored in "
                                         "E.164 and shown in each locale's format", examples=["+86 400 888 8888"])
    complaint_line: Phone | None = Field(None, description="A phone number for complaints, or none")
    reason: Reason


class BrandingOut(BaseModel):
    version: int = Field(description="0: the defaults (nothing published)")
    lender: dict[str, str]
    help_line: str | None = Field(description="E.164 (or a service short number); null: none")
    complaint_line: str | None
    created_by: str | None
    reason: str | None
    created_at: datetime | None


class BrandingFinding(BaseModel):
    field: str = Field(description="lender.zh-CN, lender.en, help_line, complaint_line, or the template "
                                   "(reminder.sms@zh-CN) it would make unsendable")
    rule: str
    match: str
    message: str


def _out(row: Any) -> BrandingOut:
    if row is None:
        return BrandingOut(version=0, lender={k: v.default_lender for k, v in templates.BUILT_INS.items()},
                           help_line=None, complaint_line=None, created_by=None, reason=None, created_at=None)
    return BrandingOut(version=row.version, lender={"zh-CN": row.lender_zh, "en": row.lender_en},
                       help_line=row.help_line, complaint_line=row.complaint_line, created_by=row.created_by,
                       reason=row.reason, created_at=row.created_at)


@router.get("/branding", response_model=BrandingOut)
async def current_branding(session: SessionDep, tenant: TenantDep) -> BrandingOut:
    """Your branding in force (version 0 and the default lender names, no help line, when you have published
    none)."""
    return _out(await service.current_branding(session, tenant))


@router.get("/branding/versions", response_model=list[BrandingOut])
async def branding_versions(session: SessionDep, tenant: TenantDep,
                            limit: int = Query(50, ge=1, le=500)) -> list[BrandingOut]:
    """Every version of your branding, newest first, with who published it and why."""
    return [_out(r) for r in await service.branding_history(session, tenant, limit=limit)]


@router.put("/branding", response_model=BrandingOut, status_code=201,
            responses={422: {"description": "Branding refused: `findings` names each field (or template) and the "
                                            "content lint rule or phone check it fails; nothing stored"}})
async def publish_branding(uow: UowDep, principal: OfficerOrSupervisor, body: BrandingIn) -> BrandingOut:
    """Publish a new version of your branding (roles `compliance` or `supervisor`; audited). Every built-in
    template and every template of yours in force is rendered with it and linted first: a lender name that poses
    as a court, the police or a government body, threatens or insults, or a phone number that is none, is refused
    with each finding. Applies to your next messages."""
    try:
        row = await service.publish_branding(uow, tenant=principal.tenant, lender=body.lender,
                                             help_line=body.help_line, complaint_line=body.complaint_line,
                                             created_by=principal.name, reason=body.reason)
    except templates.BrandingRejected as exc:
        findings = [BrandingFinding(field=f.part, rule=f.rule, match=f.match, message=f.message).model_dump()
                    for f in exc.findings]
        raise ProblemError(422, "Branding refused", str(exc)[:1000], findings=findings) from None
    await record_change(uow, principal, action="branding.publish", subject=f"branding:v{row.version}",
                        reason=body.reason)
    await uow.commit()
    service.CONTENT.forget(principal.tenant)
    return _out(row)

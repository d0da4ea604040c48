"""Templates for tenants: the templates in force for the caller's tenant (the built-in, or the tenant's own
published version, per template id and locale), a preview of a template source (rendered with sample data in
the sandbox, linted against CN-CONTENT; nothing stored), and the tenant's own versions: published (role
`compliance`, a reason, audited) only when they pass the checks every built-in passes when loaded, kept with who
published them and why, the newest applying to the tenant's next messages of that template and locale."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from services.channels import service
from services.channels.domain import templates
from services.channels.domain.content.engine import MAX_SOURCE_CHARS, TemplateSourceError
from services.channels.domain.content.lint import LEXICONS, Finding
from shared.audit import record_change
from shared.deps import Principal, Role, SessionDep, TenantDep, UowDep, require
from shared.http import ProblemError
from shared.money import is_currency

router = APIRouter(prefix="/v1", tags=["templates"])


Officer = Annotated[Principal, require(Role.COMPLIANCE)]


class TemplateInForce(BaseModel):
    id: str
    locale: str
    source: Literal["builtin", "tenant"] = Field(description="Whose version is in force for your messages")
    version: int = Field(description="The version in force: the built-in's, or yours (numbered from 1)")
    builtin_version: int = Field(description="The built-in's version (what applies without one of yours)")
    channel: str
    subject: str = Field(description="The subject's source (e-mail only)")
    body: str = Field(description="The body's source")
    created_by: str | None = Field(None, description="Yours only: who published it")
    reason: str | None = None
    created_at: datetime | None = None


class TemplateCatalogue(BaseModel):
    templates: list[TemplateInForce]
    variables: dict[str, str] = Field(description="What a template may print or test")
    lexicons: dict[str, int] = Field(description="The content lint's lexicon version per locale")


@router.get("/templates", response_model=TemplateCatalogue)
async def list_templates(session: SessionDep, tenant: TenantDep) -> TemplateCatalogue:
    """The templates in force for your messages, per template id and locale: your newest published version where
    you have one (`source` "tenant"), else the built-in; the variables a template may use and the lexicon
    versions of the content lint."""
    mine = {(r.template_id, r.locale): r for r in await service.templates_in_force(session, tenant)}
    listed = []
    for t in templates.builtins():
        r = mine.get((t.id, t.locale))
        if r is None:
            listed.append(TemplateInForce(id=t.id, locale=t.locale, source="builtin", version=t.version,
                                          builtin_version=t.version, channel=t.channel, subject=t.subject_source,
                                          body=t.body_source))
        else:
            listed.append(TemplateInForce(id=t.id, locale=t.locale, source="tenant", version=r.version,
                                          builtin_version=t.version, channel=r.channel, subject=r.subject,
                                          body=r.body, created_by=r.created_by, reason=r.reason,
                                          created_at=r.created_at))
    return TemplateCatalogue(templates=listed, variables=templates.VARIABLES,
                             lexicons={k: v.version for k, v in LEXICONS.items()})


class Sample(BaseModel):
    """Sample data for a preview; every field has a default."""

    account_ref: str | None = Field("8842", pattern=r"^[0-9A-Za-z]{1,8}$",
                                    description="The masked account tail; null for none")
    days_past_due: int = Field(12, ge=0, le=36_500)
    overdue_minor: int = Field(123_456, ge=0, le=10**15, description="Amount in minor units")
    currency: str = Field("CNY", pattern=r"^[A-Z]{3}$")
    due_date: date | None = Field(None, description="Default: today less days_past_due")
    lender: str | None = Field(None, min_length=1, max_length=100,
                               description="Default: the locale's default lender name")
    help_line: str | None = Field(None, min_length=3, max_length=32, description="A phone number, or none")


class PreviewRequest(BaseModel):
    subject: str = Field("", max_length=1_000, description="E-mail subject source (e-mail only)")
    body: str = Field(min_length=1, max_length=MAX_SOURCE_CHARS, description="Template source (Jinja2 subset)")
    locale: Literal["zh-CN", "en"]
    channel: Literal["sms", "email", "call", "field"]
    sample: Sample = Field(default_factory=Sample)


class FindingOut(BaseModel):
    rule: str
    severity: Literal["error", "warning"]
    part: Literal["subject", "body"]
    span: tuple[int, int] | None = Field(description="Character offsets in the rendered part; null: missing")
    match: str
    message: str


def _finding(f: Finding) -> FindingOut:
    return FindingOut(rule=f.rule, severity=f.severity, part=f.part, span=f.span,  # type: ignore[arg-type]
                      match=f.match, message=f.message)


class PreviewAnswer(BaseModel):
    subject: str
    body: str
    sendable: bool = Field(description="No finding of severity 'error'")
    findings: list[FindingOut]


@router.post("/templates/preview", response_model=PreviewAnswer,
             responses={422: {"description": "Invalid request, or a template outside the template language "
                                             "(unknown variable, attribute access, calls, arithmetic, control "
                                             "characters, too long) or that fails to render"}})
async def preview_template(body: PreviewRequest, tenant: TenantDep) -> PreviewAnswer:
    """Render a template source with sample data (defaults for every variable) in the sandbox and lint it
    (CN-CONTENT: nothing posing as a court or the police, no threats, insults, extra fees or pushing to
    borrow; the lender named, a way to get help and to complain, an opt-out in every SMS and e-mail).
    Nothing is stored."""
    s = body.sample
    if not is_currency(s.currency):
        raise ProblemError(422, "Invalid template", f"sample currency {s.currency!r} is not an ISO 4217 currency")
    due = s.due_date or date.today() - timedelta(days=s.days_past_due)
    try:
        result = templates.preview(subject=body.subject, body=body.body, locale=body.locale, channel=body.channel,
                                   sample=templates.TemplateContext(s.account_ref, s.days_past_due, s.overdue_minor,
                                                                    s.currency, due, body.locale, s.lender,
                                                                    s.help_line))
    except TemplateSourceError as exc:
        raise ProblemError(422, "Invalid template", str(exc)) from None
    return PreviewAnswer(subject=result.rendered.subject, body=result.rendered.body, sendable=result.sendable,
                         findings=[_finding(f) for f in result.findings])


# --- the tenant's own versions -------------------------------------------------------------------------------


class TemplateVersionIn(BaseModel):
    channel: Literal["sms", "email", "call", "field"] = Field(description="The template's channel (as the "
                                                                          "built-in's)")
    locale: Literal["zh-CN", "en"]
    subject: str = Field("", max_length=1_000, description="E-mail subject source (required for an e-mail; "
                                                           "empty otherwise)")
    body: str = Field(min_length=1, max_length=MAX_SOURCE_CHARS, description="Template source (Jinja2 subset)")
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class TemplateVersionOut(BaseModel):
    id: str
    locale: str
    version: int
    channel: str
    subject: str
    body: str
    created_by: str
    reason: str
    created_at: datetime


def _version(row: Any) -> TemplateVersionOut:
    return TemplateVersionOut(id=row.template_id, locale=row.locale, version=row.version, channel=row.channel,
                              subject=row.subject, body=row.body, created_by=row.created_by, reason=row.reason,
                              created_at=row.created_at)


def _known(template_id: str) -> None:
    if template_id not in templates.template_ids():
        raise ProblemError(404, "Not found", f"no template {template_id[:64]!r}; known: "
                                             f"{', '.join(templates.template_ids())}")


@router.post("/templates/{template_id}/versions", response_model=TemplateVersionOut, status_code=201,
             responses={404: {"description": "No such template id"},
                        422: {"description": "Invalid request or template source, or a template the content lint "
                                            "refuses (`findings`); nothing stored"}})
async def publish_template_version(uow: UowDep, principal: Officer, template_id: str,
                                   body: TemplateVersionIn) -> TemplateVersionOut:
    """Publish your own wording of a template in a locale (role `compliance`; audited). It is checked exactly as
    the built-ins are: its source must name `{{ lender }}`, offer help and a way to complain, carry the opt-out
    wording (SMS, e-mail) and say nothing the content lint forbids; it is rendered for the sample debts the
    built-ins are (and with your branding) and each rendering linted; an e-mail must print
    `{{ unsubscribe_url }}`. A failing one is refused with the findings and nothing is stored; a passing one gets
    your next version number for that template and locale and applies to your next messages."""
    _known(template_id)
    try:
        row = await service.publish_template_version(
            uow, tenant=principal.tenant, template_id=template_id, locale=body.locale, channel=body.channel,
            subject=body.subject, body=body.body, created_by=principal.name, reason=body.reason)
    except templates.ContentRejected as exc:
        raise ProblemError(422, "Template refused", str(exc)[:1000],
                           findings=[_finding(f).model_dump() for f in exc.findings]) from None
    except TemplateSourceError as exc:
        raise ProblemError(422, "Invalid template", str(exc)[:1000]) from None
    await record_change(uow, principal, action="template.publish",
                        subject=f"template:{template_id}@{body.locale}:v{row.version}", reason=body.reason)
    await uow.commit()
    service.CONTENT.forget(principal.tenant)
    return _version(row)


@router.get("/templates/{template_id}/versions", response_model=list[TemplateVersionOut],
            responses={404: {"description": "No such template id"}})
async def template_versions(session: SessionDep, tenant: TenantDep, template_id: str,
                            locale: Literal["zh-CN", "en"] | None = None,
                            limit: int = Query(50, ge=1, le=500)) -> list[TemplateVersionOut]:
    """Every version of this template you published (per locale, newest first), with who published it and why;
    empty when the built-in has always applied."""
    _known(template_id)
    return [_version(r) for r in await service.template_history(session, tenant, template_id, locale=locale,
                                                                limit=limit)]

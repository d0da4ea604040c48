"""Templates for tenants: the built-in templates with their versions, and a preview of a template source
(rendered with sample data in the sandbox, linted against CN-CONTENT). Nothing is stored: keeping tenant
templates per tenant is a later step."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from services.channels.domain import templates
from services.channels.domain.content.engine import MAX_SOURCE_CHARS, TemplateSourceError
from services.channels.domain.content.lint import LEXICONS
from shared.deps import TenantDep
from shared.http import ProblemError
from shared.money import is_currency

router = APIRouter(prefix="/v1", tags=["templates"])


class BuiltInTemplate(BaseModel):
    id: str
    locale: str
    version: int
    channel: str
    subject: str = Field(description="The subject's source (e-mail only)")
    body: str = Field(description="The body's source")


class TemplateCatalogue(BaseModel):
    templates: list[BuiltInTemplate]
    variables: dict[str, str] = Field(description="What a template may print or test")
    lexicons: dict[str, int] = Field(description="The content lint's lexicon version per locale")


@router.get("/templates", response_model=TemplateCatalogue)
async def list_templates(tenant: TenantDep) -> TemplateCatalogue:
    """The built-in templates (per locale, versioned), the variables a template may use and the lexicon
    versions of the content lint."""
    return TemplateCatalogue(
        templates=[BuiltInTemplate(id=t.id, locale=t.locale, version=t.version, channel=t.channel,
                                   subject=t.subject_source, body=t.body_source) for t in templates.builtins()],
        variables=templates.VARIABLES, lexicons={k: v.version for k, v in LEXICONS.items()})


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
                         findings=[FindingOut(rule=f.rule, severity=f.severity, part=f.part, span=f.span,
                                              match=f.match, message=f.message)  # type: ignore[arg-type]
                                   for f in result.findings])

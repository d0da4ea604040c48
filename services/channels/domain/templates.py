"""Message templates (zh-CN, en), kept as data: ``content/templates/<locale>.toml``, one versioned entry
per template, rendered by Jinja2 in a sandbox (``content/engine.py``) and linted (``content/lint.py``,
CN-CONTENT): every built-in is linted when this module is imported, as its source and as rendered for a
set of sample debts (a failing built-in makes the import fail), and every message again when rendered
(``ContentRejected``, which the dispatcher reports as "not sendable" for that row).

Amounts are formatted by babel for the customer's locale with the currency's ISO 4217 exponent from
``shared.money`` (babel's own CLDR digits differ for some currencies, e.g. IDR 0 against ISO's 2, and
would round the amount): "1,234.56 CNY", "123,456 JPY", "1,234.567 KWD". Dates by babel, the locale's
``date_format`` ("2026年3月1日", "March 1, 2026"). A help line, when known, is normalised by phonenumbers.

The account is named only by ``account_ref``, the masked tail the lender shows its customers ("尾号8842",
"ending 8842"); without one the text says "your account" and names no number. The internal account id
never appears in a message, not even a slice of it.

``pre_due.*`` is the reminder at DPD 0: it says when payment is due and how much, never "overdue".
A ``reminder.*`` requested at DPD 0 or earlier says the same (there is nothing overdue yet to speak of).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import phonenumbers
from babel import Locale
from babel.dates import format_date
from babel.numbers import format_currency
from jinja2.environment import Template
from phonenumbers import PhoneNumberFormat
from phonenumbers.shortnumberinfo import is_valid_short_number_for_region

from services.channels.domain.content.engine import TemplateSourceError, compile_source, render_compiled
from services.channels.domain.content.lint import CHANNELS, Finding, describe, errors, lint
from shared.money import from_minor, minor_digits

TEMPLATE_DIR = Path(__file__).with_name("content") / "templates"
LOCALES = ("zh-CN", "en")
# the messages the dispatcher sends; the agent texts (call.script, field.visit) are rendered for agents
TEMPLATE_IDS = ("pre_due.sms", "pre_due.email", "reminder.sms", "reminder.email")
AGENT_TEMPLATE_IDS = ("call.script", "field.visit")
VARIABLES: dict[str, str] = {
    "lender": "the lender's name",
    "help_line": "the lender's help line (normalised phone number), or none",
    "account_ref": "the masked account tail the lender shows its customers (\"8842\"), or none",
    "days_past_due": "days past due (an integer, 0 before the due date)",
    "amount": "the amount due with its currency, formatted for the locale (\"1,234.56 CNY\")",
    "due_date": "the due date, formatted for the locale",
    "currency": "the ISO 4217 currency code",
}
_VARIABLE_NAMES = frozenset(VARIABLES)
_REGION = {"zh-CN": "CN", "en": "US"}


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered message: subject (e-mail only) and body."""

    subject: str
    body: str


@dataclass(frozen=True, slots=True)
class TemplateContext:
    """What a template may say about the debt. ``account_ref`` is the masked tail the lender shows the
    customer (e.g. "8842"), or None; the internal account id is deliberately not part of it. ``lender``
    and ``help_line`` default to the locale's defaults (no help line) until tenants have a profile."""

    account_ref: str | None
    days_past_due: int
    overdue_minor: int
    currency: str
    due_date: date
    locale: str
    lender: str | None = None
    help_line: str | None = None


class ContentRejected(ValueError):
    """A rendered message the content lint refuses (CN-CONTENT): not sendable."""

    def __init__(self, template: str, findings: list[Finding]) -> None:
        super().__init__(f"{template} fails the content lint: {describe(findings)}")
        self.findings = findings


@dataclass(frozen=True, slots=True)
class Compiled:
    """One template of one locale, compiled."""

    id: str
    locale: str
    version: int
    channel: str
    subject_source: str
    body_source: str
    subject: Template
    body: Template

    def render(self, values: Mapping[str, Any]) -> Rendered:
        name = f"{self.id}@{self.locale}"
        return Rendered(render_compiled(self.subject, values, name=f"{name} subject").strip(),
                        render_compiled(self.body, values, name=f"{name} body").strip())


def template_locale(locale: str) -> str:
    """The template locale for a customer's: zh-* -> zh-CN, anything else -> en."""
    return "zh-CN" if locale.lower().startswith("zh") else "en"


def format_money(amount_minor: int, currency: str, locale: str) -> str:
    """babel's formatting for the locale, with the ISO 4217 exponent: '1,234.56 CNY' (as format_amount)."""
    digits = minor_digits(currency)
    pattern = "#,##0" + ("." + "0" * digits if digits else "") + " ¤¤"
    return format_currency(from_minor(amount_minor, currency), currency, format=pattern,
                           locale=Locale.parse(template_locale(locale), sep="-"), currency_digits=False)


def format_phone(raw: str, locale: str) -> str:
    """A help line for the locale: national format when it is the locale's country ("400 888 8888"),
    international otherwise ("+1 415-555-0100"); a service short number as dialled ("95588"). ValueError
    if it is no valid number."""
    region = _REGION[template_locale(locale)]
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"the help line is not a phone number: {exc}") from None
    if phonenumbers.is_valid_number(number):
        same = phonenumbers.region_code_for_number(number) == region
        return phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL if same
                                          else PhoneNumberFormat.INTERNATIONAL)
    if is_valid_short_number_for_region(number, region):
        return phonenumbers.national_significant_number(number)
    raise ValueError("the help line is not a valid phone number")


def values_of(ctx: TemplateContext, *, date_format: str, default_lender: str) -> dict[str, Any]:
    """The template variables of a context, formatted for its locale."""
    locale = template_locale(ctx.locale)
    return {
        "lender": ctx.lender or default_lender,
        "help_line": format_phone(ctx.help_line, locale) if ctx.help_line else None,
        "account_ref": ctx.account_ref or None,
        "days_past_due": ctx.days_past_due,
        "amount": format_money(ctx.overdue_minor, ctx.currency, locale),
        "due_date": format_date(ctx.due_date, date_format, locale=Locale.parse(locale, sep="-")),
        "currency": ctx.currency,
    }


def lint_message(rendered: Rendered, locale: str, channel: str, *, lender: str | None) -> list[Finding]:
    """The findings on a message: the subject for forbidden content, the body for that and what it must
    carry (``lender`` None: a template's source, which must use ``{{ lender }}``)."""
    return [*lint(rendered.subject, locale, channel, part="subject", required=False),
            *lint(rendered.body, locale, channel, lender=lender, part="body")]


@dataclass(frozen=True, slots=True)
class LocaleTemplates:
    locale: str
    date_format: str
    default_lender: str
    templates: dict[str, Compiled]

    def values(self, ctx: TemplateContext) -> dict[str, Any]:
        return values_of(ctx, date_format=self.date_format, default_lender=self.default_lender)


_FILE_KEYS = {"locale", "date_format", "defaults", "templates"}
_TEMPLATE_KEYS = {"version", "channel", "subject", "body"}


def _samples(locale: str) -> Iterable[TemplateContext]:
    """Debts every built-in is rendered and linted for when loaded."""
    for ref in ("8842", None):
        for dpd in (0, 1, 12):
            yield TemplateContext(ref, dpd, 123456, "CNY", date(2026, 3, 1), locale)
    yield TemplateContext("8842", 400, 1234567, "KWD", date(2026, 3, 1), locale, help_line="+1 202-555-0173")


def load_locale(data: dict[str, Any], where: str) -> LocaleTemplates:
    """One locale's templates from their TOML data, compiled and linted; ValueError (TemplateSourceError,
    ContentRejected) on anything wrong: a built-in never half-loads."""
    if unknown := set(data) - _FILE_KEYS:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    locale = data["locale"]
    if locale not in LOCALES:
        raise ValueError(f"{where}: locale {locale!r} is not one of {LOCALES}")
    compiled = {}
    for template_id, t in data["templates"].items():
        if set(t) != _TEMPLATE_KEYS:
            raise ValueError(f"{where} {template_id}: keys must be {sorted(_TEMPLATE_KEYS)}")
        if t["channel"] not in CHANNELS or not template_id.endswith(("." + t["channel"], ".script", ".visit")):
            raise ValueError(f"{where} {template_id}: channel {t['channel']!r} does not fit")
        if not isinstance(t["version"], int) or t["version"] < 1:
            raise ValueError(f"{where} {template_id}: version must be a positive integer")
        if t["channel"] != "email" and t["subject"]:
            raise ValueError(f"{where} {template_id}: only e-mails have a subject")
        name = f"{where} {template_id}"
        compiled[template_id] = Compiled(
            template_id, locale, t["version"], t["channel"], t["subject"], t["body"],
            compile_source(t["subject"], _VARIABLE_NAMES, name=f"{name} subject"),
            compile_source(t["body"], _VARIABLE_NAMES, name=f"{name} body"))
        if found := errors(lint_message(Rendered(t["subject"], t["body"]), locale, t["channel"], lender=None)):
            raise ContentRejected(name, found)
    loaded = LocaleTemplates(locale, data["date_format"], data["defaults"]["lender"], compiled)
    for c in compiled.values():
        for ctx in _samples(locale):
            rendered = c.render(loaded.values(ctx))
            if found := errors(lint_message(rendered, locale, c.channel, lender=loaded.default_lender)):
                raise ContentRejected(f"{where} {c.id} rendered for {ctx}", found)
    return loaded


def load_builtins(directory: Path = TEMPLATE_DIR) -> dict[str, LocaleTemplates]:
    loaded = {}
    for path in sorted(directory.glob("*.toml")):
        lt = load_locale(tomllib.loads(path.read_text(encoding="utf-8")), path.name)
        if lt.locale != path.stem:
            raise ValueError(f"{path.name}: locale {lt.locale!r} does not match the file name")
        if missing := (set(TEMPLATE_IDS) | set(AGENT_TEMPLATE_IDS)) - set(lt.templates):
            raise ValueError(f"{path.name}: missing templates {sorted(missing)}")
        loaded[lt.locale] = lt
    if set(loaded) != set(LOCALES):
        raise ValueError(f"built-in templates: locales {sorted(loaded)}, expected {LOCALES}")
    return loaded


BUILT_INS: dict[str, LocaleTemplates] = load_builtins()


def builtins() -> list[Compiled]:
    """Every built-in template of every locale."""
    return [t for lt in BUILT_INS.values() for t in lt.templates.values()]


def render(template_id: str, ctx: TemplateContext) -> Rendered:
    """Render a built-in template for the customer's locale, and lint the result. Unknown ids raise
    KeyError (a configuration error, not a message error); a help line that is no phone number raises
    ValueError, a text the content lint refuses ``ContentRejected``: both make that message unsendable."""
    if template_id not in TEMPLATE_IDS and template_id not in AGENT_TEMPLATE_IDS:
        raise KeyError(template_id)
    if template_id.startswith("reminder.") and ctx.days_past_due <= 0:
        template_id = template_id.replace("reminder.", "pre_due.", 1)  # never "0 days past due"
    lt = BUILT_INS[template_locale(ctx.locale)]
    template = lt.templates[template_id]
    values = lt.values(ctx)
    rendered = template.render(values)
    if found := _render_findings(template_id, lt.locale, _wording(ctx)):
        raise ContentRejected(f"{template_id}@{lt.locale} v{template.version}", list(found))
    return rendered


def _wording(ctx: TemplateContext) -> TemplateContext:
    """The context with what cannot carry words made canonical: the amount, the due date, and an account
    reference made only of digits (a same-length run of zeros). The lint verdict of a message is that of its
    wording, so it is computed once per wording, not once per message (it was a third of channels' CPU)."""
    ref = ctx.account_ref
    if ref is not None and ref.isdigit():
        ref = "0" * len(ref)
    return replace(ctx, account_ref=ref, overdue_minor=0, due_date=_CANONICAL_DAY)


_CANONICAL_DAY = date(2000, 1, 1)


@lru_cache(maxsize=4096)
def _render_findings(template_id: str, locale: str, wording: TemplateContext) -> tuple[Finding, ...]:
    """The content lint's errors on the built-in ``template_id`` rendered with ``wording``."""
    lt = BUILT_INS[locale]
    template = lt.templates[template_id]
    values = lt.values(wording)
    return tuple(errors(lint_message(template.render(values), lt.locale, template.channel, lender=values["lender"])))


@dataclass(frozen=True, slots=True)
class Preview:
    """A tenant's template rendered with sample data, and what the content lint says of it."""

    rendered: Rendered
    findings: list[Finding]

    @property
    def sendable(self) -> bool:
        return not errors(self.findings)


def preview(*, subject: str, body: str, locale: str, channel: str, sample: TemplateContext) -> Preview:
    """Compile a template source in the sandbox, render it with ``sample`` and lint the result; nothing is
    stored. TemplateSourceError (a ValueError) for a source outside the template language, one that fails
    to render, or sample data that cannot be formatted (an unknown currency, a bad help line)."""
    if channel not in CHANNELS:
        raise TemplateSourceError(f"unknown channel {channel!r}")
    if subject and channel != "email":
        raise TemplateSourceError("only e-mails have a subject")
    lt = BUILT_INS[template_locale(locale)]
    compiled_subject = compile_source(subject, _VARIABLE_NAMES, name="subject")
    compiled_body = compile_source(body, _VARIABLE_NAMES, name="body")
    try:
        values = lt.values(replace(sample, locale=lt.locale))
    except ValueError as exc:
        raise TemplateSourceError(f"sample data: {str(exc)[:200]}") from None
    rendered = Rendered(render_compiled(compiled_subject, values, name="subject").strip(),
                        render_compiled(compiled_body, values, name="body").strip())
    return Preview(rendered, lint_message(rendered, lt.locale, channel, lender=values["lender"]))

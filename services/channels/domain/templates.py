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

Every e-mail prints ``unsubscribe_url``, the customer's signed one-click unsubscribe link (the dispatcher
makes one per e-mail, ``domain/unsubscribe.py``; the same link goes in the ``List-Unsubscribe`` header); a
built-in e-mail that does not fails to load. Without a public address (CHANNELS_PUBLIC_BASE_URL in prod) it
is none, and the e-mails say how to opt out in words.

``portal_url`` is the customer's own one-time link to the customer portal (plans' ``/portal/l/<token>``, a
signed token bound to the tenant and the contact's account, ``shared/portal_links.py``), made per message by
the dispatcher when PORTAL_BASE_URL is set, else none: templates write ``{% if portal_url %}...{% endif %}``.
It is a credential: never logged.

``pre_due.*`` is the reminder at DPD 0: it says when payment is due and how much, never "overdue".
A ``reminder.*`` requested at DPD 0 or earlier says the same (there is nothing overdue yet to speak of).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import phonenumbers
from babel import Locale
from babel.dates import format_date
from babel.numbers import NumberPattern, parse_pattern
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
    "complaint_line": "the lender's complaint line (normalised phone number), or none",
    "account_ref": "the masked account tail the lender shows its customers (\"8842\"), or none",
    "days_past_due": "days past due (an integer, 0 before the due date)",
    "amount": "the amount due with its currency, formatted for the locale (\"1,234.56 CNY\")",
    "due_date": "the due date, formatted for the locale",
    "currency": "the ISO 4217 currency code",
    "unsubscribe_url": "e-mail: the customer's signed one-click unsubscribe link (every e-mail must print it), "
                       "or none when no public address is configured",
    "portal_url": "SMS and e-mail: the customer's one-time link to the customer portal for this account (to agree "
                  "a plan online), or none when PORTAL_BASE_URL is not configured",
}
# What an e-mail preview and the load-time check render for ``unsubscribe_url`` (the real link is made per
# e-mail by the dispatcher: services/channels/domain/unsubscribe.py).
SAMPLE_UNSUBSCRIBE_URL = "https://collections.example.com/v1/unsubscribe/SAMPLE"
# What previews and the load-time check render for ``portal_url`` (the real link is minted per message by the
# dispatcher: services/channels/service.py PortalLinks).
SAMPLE_PORTAL_URL = "https://portal.example.com/portal/l/SAMPLE"
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
    , ``help_line`` and ``complaint_line`` come from the tenant's branding (``TenantContent.context``); without one
    the locale's default lender and no help line."""

    account_ref: str | None
    days_past_due: int
    overdue_minor: int
    currency: str
    due_date: date
    locale: str
    lender: str | None = None
    help_line: str | None = None
    # e-mail: the signed unsubscribe link of this e-mail (services/channels/domain/unsubscribe.py), or None
    unsubscribe_url: str | None = None
    complaint_line: str | None = None
    # SMS and e-mail: the customer's one-time portal link for the account (shared/portal_links.py), or None
    portal_url: str | None = None


class ContentRejected(ValueError):
    """A rendered message the content lint refuses (CN-CONTENT): not sendable."""

    def __init__(self, template: str, findings: list[Finding]) -> None:
        super().__init__(f"{template} fails the content lint: {describe(findings)}")
        self.findings = findings


@dataclass(frozen=True, slots=True, eq=False)
class Compiled:
    """One template of one locale, compiled (a built-in, or a tenant's published version). Compared and hashed
    by identity: the lint verdicts of its renderings are cached per object."""

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


@lru_cache(maxsize=16)
def _locale(locale: str) -> Locale:
    return Locale.parse(locale, sep="-")


@lru_cache(maxsize=256)
def _money_pattern(currency: str) -> NumberPattern:
    digits = minor_digits(currency)
    return parse_pattern("#,##0" + ("." + "0" * digits if digits else "") + " ¤¤")


def format_money(amount_minor: int, currency: str, locale: str) -> str:
    """babel's formatting for the locale, with the ISO 4217 exponent: '1,234.56 CNY' (as format_amount). The
    pattern and locale are parsed once (what ``babel.numbers.format_currency`` does on every call)."""
    return _money_pattern(currency).apply(from_minor(amount_minor, currency), _locale(template_locale(locale)),
                                          currency=currency, currency_digits=False)


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


_format_phone = lru_cache(maxsize=256)(format_phone)  # a tenant's help line, on every message


@lru_cache(maxsize=1024)
def _format_date(day: date, date_format: str, locale: str) -> str:
    return format_date(day, date_format, locale=_locale(locale))


def values_of(ctx: TemplateContext, *, date_format: str, default_lender: str) -> dict[str, Any]:
    """The template variables of a context, formatted for its locale."""
    locale = template_locale(ctx.locale)
    return {
        "lender": ctx.lender or default_lender,
        "help_line": _format_phone(ctx.help_line, locale) if ctx.help_line else None,
        "complaint_line": _format_phone(ctx.complaint_line, locale) if ctx.complaint_line else None,
        "account_ref": ctx.account_ref or None,
        "days_past_due": ctx.days_past_due,
        "amount": format_money(ctx.overdue_minor, ctx.currency, locale),
        "due_date": _format_date(ctx.due_date, date_format, locale),
        "currency": ctx.currency,
        "unsubscribe_url": ctx.unsubscribe_url or None,
        "portal_url": ctx.portal_url or None,
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
    yield TemplateContext("8842", 400, 1234567, "KWD", date(2026, 3, 1), locale, help_line="+1 202-555-0173",
                          complaint_line="+1 202-555-0188")
    for dpd in (0, 12):
        yield TemplateContext("8842", dpd, 123456, "CNY", date(2026, 3, 1), locale,
                              unsubscribe_url=SAMPLE_UNSUBSCRIBE_URL)
        yield TemplateContext("8842", dpd, 123456, "CNY", date(2026, 3, 1), locale,
                              unsubscribe_url=SAMPLE_UNSUBSCRIBE_URL, portal_url=SAMPLE_PORTAL_URL)


def unsubscribe_link_findings(rendered: Rendered, channel: str, url: str | None) -> list[Finding]:
    """An e-mail rendered with an unsubscribe link must print it (in the body): every e-mail carries one."""
    if channel != "email" or not url or url in rendered.body:
        return []
    return [Finding("unsubscribe_link", "error", None, "the e-mail does not print {{ unsubscribe_url }}, the "
                    "customer's one-click unsubscribe link")]


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
        if bad := sample_findings(c, loaded, _samples(locale)):
            raise ContentRejected(f"{where} {c.id} rendered for {bad[0]}", bad[1])
    return loaded


def sample_findings(template: Compiled, lt: LocaleTemplates, contexts: Iterable[TemplateContext],
                    ) -> tuple[TemplateContext, list[Finding]] | None:
    """The first of ``contexts`` whose rendering the content lint refuses, with its errors (the lender it must
    name is the context's, else the locale's default); None when every rendering passes."""
    for ctx in contexts:
        values = lt.values(ctx)
        rendered = template.render(values)
        if found := errors([*lint_message(rendered, lt.locale, template.channel, lender=values["lender"]),
                            *unsubscribe_link_findings(rendered, template.channel, ctx.unsubscribe_url)]):
            return ctx, found
    return None


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


def render(template_id: str, ctx: TemplateContext, content: TenantContent | None = None) -> Rendered:
    """Render a template for the customer's locale, and lint the result: the tenant's published version of
    ``template_id`` in that locale when ``content`` has one, else the built-in; with the tenant's branding
    (lender, help and complaint lines) when it has one, else the defaults. Unknown ids raise KeyError (a
    configuration error, not a message error); a help line that is no phone number raises ValueError, a text
    the content lint refuses ``ContentRejected``: both make that message unsendable."""
    if template_id not in TEMPLATE_IDS and template_id not in AGENT_TEMPLATE_IDS:
        raise KeyError(template_id)
    if template_id.startswith("reminder.") and ctx.days_past_due <= 0:
        template_id = template_id.replace("reminder.", "pre_due.", 1)  # never "0 days past due"
    lt = BUILT_INS[template_locale(ctx.locale)]
    template = lt.templates[template_id]
    if content is not None:
        ctx = content.context(ctx)
        template = content.templates.get((template_id, lt.locale), template)
    values = lt.values(ctx)
    rendered = template.render(values)
    if found := _render_findings(template, _wording(ctx)):
        origin = "" if template is lt.templates[template_id] else " (the tenant's)"
        raise ContentRejected(f"{template_id}@{lt.locale} v{template.version}{origin}", list(found))
    return rendered


def _wording(ctx: TemplateContext) -> TemplateContext:
    """The context with what cannot carry words made canonical: the amount, the due date, and an account
    reference made only of digits (a same-length run of zeros). The lint verdict of a message is that of its
    wording, so it is computed once per wording, not once per message (it was a third of channels' CPU)."""
    ref = ctx.account_ref
    if ref is not None and ref.isdigit():
        ref = "0" * len(ref)
    # the unsubscribe and portal links are tokens, not words (and unique per message): the sample links stand for
    # them (so the lint's findings never quote a real link either)
    return replace(ctx, account_ref=ref, overdue_minor=0, due_date=_CANONICAL_DAY,
                   unsubscribe_url=SAMPLE_UNSUBSCRIBE_URL if ctx.unsubscribe_url else None,
                   portal_url=SAMPLE_PORTAL_URL if ctx.portal_url else None)


_CANONICAL_DAY = date(2000, 1, 1)


@lru_cache(maxsize=4096)
def _render_findings(template: Compiled, wording: TemplateContext) -> tuple[Finding, ...]:
    """The content lint's errors on ``template`` (a built-in or a tenant's) rendered with ``wording``."""
    lt = BUILT_INS[template.locale]
    values = lt.values(wording)
    rendered = template.render(values)
    return tuple(errors([*lint_message(rendered, lt.locale, template.channel, lender=values["lender"]),
                         *unsubscribe_link_findings(rendered, template.channel, wording.unsubscribe_url)]))


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
    link = (sample.unsubscribe_url or SAMPLE_UNSUBSCRIBE_URL) if channel == "email" else None
    portal = (sample.portal_url or SAMPLE_PORTAL_URL) if channel in ("sms", "email") else None
    try:
        values = lt.values(replace(sample, locale=lt.locale, unsubscribe_url=link, portal_url=portal))
    except ValueError as exc:
        raise TemplateSourceError(f"sample data: {str(exc)[:200]}") from None
    rendered = Rendered(render_compiled(compiled_subject, values, name="subject").strip(),
                        render_compiled(compiled_body, values, name="body").strip())
    # an e-mail without the link is not sendable: publishing it (``check_version``) is refused for the same reason
    missing_link = unsubscribe_link_findings(rendered, channel, link)
    return Preview(rendered, [*lint_message(rendered, lt.locale, channel, lender=values["lender"]), *missing_link])


# --- tenants' branding and published templates (issue 7) ----------------------------------------------------

LENDER_MAX_CHARS = 60
# a lender name is plain words: no template syntax, no brackets of an SMS signature, no control characters
_NAME_REFUSED = re.compile(r"[{}<>\[\]【】\x00-\x1f\x7f]")
# a phone number without a country code is read as Chinese (the platform's home market)
PHONE_DEFAULT_REGION = "CN"


@dataclass(frozen=True, slots=True)
class Branding:
    """A tenant's branding: the lender name its messages carry per template locale, its help line and
    optionally a complaint line (normalised: E.164, or the digits of a service short number)."""

    lender: Mapping[str, str]
    help_line: str
    complaint_line: str | None = None
    version: int = 0


@dataclass(frozen=True, slots=True)
class TenantContent:
    """What a tenant has published that applies to its messages: its branding (None: the defaults) and its
    templates in force, by (template id, locale) (absent: the built-in)."""

    branding: Branding | None = None
    templates: Mapping[tuple[str, str], Compiled] = field(default_factory=dict)

    def context(self, ctx: TemplateContext) -> TemplateContext:
        """``ctx`` with the branding's lender, help and complaint lines where ``ctx`` names none."""
        b = self.branding
        if b is None:
            return ctx
        return replace(ctx, lender=ctx.lender or b.lender.get(template_locale(ctx.locale)),
                       help_line=ctx.help_line or b.help_line, complaint_line=ctx.complaint_line or b.complaint_line)


NO_CONTENT = TenantContent()


class BrandingRejected(ValueError):
    """A branding that cannot be used; each finding's ``part`` names the field (``lender.zh-CN``, ``help_line``,
    ``complaint_line``) or the template (``reminder.sms@zh-CN``) it breaks."""

    def __init__(self, findings: list[Finding]) -> None:
        super().__init__(describe(findings))
        self.findings = findings


def normalise_phone(raw: str) -> str:
    """A help or complaint line as stored: E.164 ("+864008888888"), or the digits of a service short number
    ("95588"); read as Chinese without a country code. ValueError unless it is a valid number that customers
    of every template locale can be shown (``format_phone``)."""
    text = raw.strip()
    if not 3 <= len(text) <= 32:
        raise ValueError("a phone number has 3 to 32 characters")
    try:
        number = phonenumbers.parse(text, PHONE_DEFAULT_REGION)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not a phone number: {exc}") from None
    if phonenumbers.is_valid_number(number):
        normalised = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    elif is_valid_short_number_for_region(number, PHONE_DEFAULT_REGION):
        normalised = phonenumbers.national_significant_number(number)
    else:
        raise ValueError("not a valid phone number (give it with its country code, e.g. +86 400 888 8888)")
    for locale in LOCALES:
        try:
            format_phone(normalised, locale)
        except ValueError:
            raise ValueError(f"{normalised} cannot be shown to {locale} customers (a short number is dialable in "
                             "its own country only): give a full number with its country code") from None
    return normalised


def _finding(rule: str, part: str, message: str) -> Finding:
    return Finding(rule, "error", None, message, part=part)


def check_branding(*, lender: Mapping[str, str], help_line: str, complaint_line: str | None,
                   templates: Iterable[Compiled] = ()) -> Branding:
    """A branding from what a tenant asks for, or BrandingRejected with every finding: each lender name (one
    per locale) is linted like a message (nothing posing as a court or the police, no threats ...), the phone
    numbers normalised; then every built-in and every template of ``templates`` (the tenant's in force) is
    rendered with it for the sample debts and linted, so a branding that would make a message unsendable is
    never stored."""
    found: list[Finding] = []
    names: dict[str, str] = {}
    if unknown := set(lender) - set(LOCALES):
        found.append(_finding("lender", "lender", f"unknown locales {sorted(unknown)}; give {list(LOCALES)}"))
    for locale in LOCALES:
        part = f"lender.{locale}"
        name = " ".join(lender.get(locale, "").split())
        if not name:
            found.append(_finding("lender", part, f"give the lender's name for {locale} customers"))
        elif len(name) > LENDER_MAX_CHARS or _NAME_REFUSED.search(name):
            found.append(_finding("lender", part, f"a lender name is 1 to {LENDER_MAX_CHARS} characters of plain "
                                                  "text (no braces, brackets or control characters)"))
        else:
            found += [replace(f, part=part) for f in errors(lint(name, locale, "sms", required=False))]
            names[locale] = name
    lines: dict[str, str | None] = {"help_line": help_line, "complaint_line": complaint_line}
    for part, raw in lines.items():
        if raw is None:
            continue
        try:
            lines[part] = normalise_phone(raw)
        except ValueError as exc:
            found.append(_finding("phone", part, str(exc)))
    if found:
        raise BrandingRejected(found)
    branding = Branding(names, lines["help_line"] or "", lines["complaint_line"])
    content = TenantContent(branding)
    for c in [*builtins(), *templates]:
        if bad := sample_findings(c, BUILT_INS[c.locale], (content.context(ctx) for ctx in _samples(c.locale))):
            found += [replace(f, part=f"{c.id}@{c.locale}") for f in bad[1]]
    if found:
        raise BrandingRejected(found)
    return branding


def template_ids() -> tuple[str, ...]:
    """Every template id a tenant may publish its own version of."""
    return (*TEMPLATE_IDS, *AGENT_TEMPLATE_IDS)


def compile_version(*, template_id: str, locale: str, channel: str, subject: str, body: str,
                    version: int) -> Compiled:
    """A tenant's version of a template, compiled in the sandbox (no lint: see ``check_version``). KeyError for
    an unknown template id or locale; TemplateSourceError for a channel that is not the template's, a subject
    outside an e-mail or a source outside the template language."""
    if template_id not in template_ids() or locale not in LOCALES:
        raise KeyError(template_id)
    builtin = BUILT_INS[locale].templates[template_id]
    if channel != builtin.channel:
        raise TemplateSourceError(f"{template_id} goes by {builtin.channel}, not {channel}")
    if subject and channel != "email":
        raise TemplateSourceError("only e-mails have a subject")
    if channel == "email" and not subject.strip():
        raise TemplateSourceError("an e-mail needs a subject")
    name = f"{template_id}@{locale}"
    return Compiled(template_id, locale, version, channel, subject, body,
                    compile_source(subject, _VARIABLE_NAMES, name=f"{name} subject"),
                    compile_source(body, _VARIABLE_NAMES, name=f"{name} body"))


def check_version(*, template_id: str, locale: str, channel: str, subject: str, body: str, version: int,
                  branding: Branding | None = None) -> Compiled:
    """A tenant's version of a template, checked exactly as the built-ins are when loaded: compiled, its source
    linted (it names ``{{ lender }}``, says nothing forbidden, carries help, complaint and, for SMS and e-mail,
    opt-out wording), then rendered for the same sample debts and linted, an e-mail printing its
    ``{{ unsubscribe_url }}``; also with the tenant's ``branding`` when it has one. ``ContentRejected`` with the
    findings of the source or of the first sample that fails; see ``compile_version`` for the other errors."""
    compiled = compile_version(template_id=template_id, locale=locale, channel=channel, subject=subject, body=body,
                               version=version)
    name = f"{template_id}@{locale}"
    if found := errors(lint_message(Rendered(subject, body), locale, channel, lender=None)):
        raise ContentRejected(f"{name} (its source)", found)
    samples = list(_samples(locale))
    if branding is not None:
        samples += [TenantContent(branding).context(ctx) for ctx in _samples(locale)]
    if bad := sample_findings(compiled, BUILT_INS[locale], samples):
        ctx = bad[0]
        raise ContentRejected(f"{name} rendered for a sample debt (account_ref {ctx.account_ref}, "
                              f"{ctx.days_past_due} days past due, lender {ctx.lender or 'the default'})", bad[1])
    return compiled

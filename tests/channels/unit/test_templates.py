"""Unit tests for message templates (services/channels/domain/templates.py: data files in
domain/content/templates/, Jinja2 sandbox, babel, phonenumbers) against CN-CONTENT."""

from __future__ import annotations

import re
import tomllib
from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.channels.domain import templates as tpl
from services.channels.domain.content.engine import TemplateSourceError
from services.channels.domain.templates import (
    AGENT_TEMPLATE_IDS,
    TEMPLATE_IDS,
    ContentRejected,
    Rendered,
    TemplateContext,
    render,
)
from shared.money import format_amount, is_currency

PROPS = settings(max_examples=200, deadline=None, database=None)
REMINDERS = ["reminder.sms", "reminder.email"]
PRE_DUE = ["pre_due.sms", "pre_due.email"]
ALL_IDS = [*TEMPLATE_IDS, *AGENT_TEMPLATE_IDS]
LOCALES = ["zh-CN", "en"]
DUE = {"zh-CN": "2026年3月1日", "en": "March 1, 2026"}
FORBIDDEN_ZH = ["法院", "公安", "警察", "起诉", "拘留", "坐牢", "逮捕", "律师函", "通讯录", "曝光", "手续费",
                "违约金", "借钱", "贷款还"]
FORBIDDEN_EN = ["police", "court", "arrest", "jail", "prison", "lawsuit", "sue", "legal action", "criminal",
                "fee", "fees", "borrow", "penalty"]
# what a text says about being late: never in a pre-due reminder
OVERDUE_WORDS = ["逾期", "past due", "overdue", "late"]


def ctx(locale: str, **overrides: object) -> TemplateContext:
    values: dict[str, object] = {
        "account_ref": "8842", "days_past_due": 12, "overdue_minor": 123456, "currency": "CNY",
        "due_date": date(2026, 3, 1), "locale": locale,
    }
    values.update(overrides)
    return TemplateContext(**values)  # type: ignore[arg-type]


def full_text(rendered: Rendered) -> str:
    return f"{rendered.subject}\n{rendered.body}"


def has_opt_out(text: str, locale: str) -> bool:
    if locale == "zh-CN":
        return "TD" in text or "退订" in text
    return re.search(r"\bSTOP\b", text) is not None


def forbidden_in(text: str) -> list[str]:
    lowered = text.lower()
    found = [w for w in FORBIDDEN_ZH if w in text]
    found += [w for w in FORBIDDEN_EN if re.search(rf"\b{re.escape(w)}\b", lowered)]
    return found


def test_the_template_ids() -> None:
    assert set(TEMPLATE_IDS) == {*REMINDERS, *PRE_DUE}
    assert set(AGENT_TEMPLATE_IDS) == {"call.script", "field.visit"}
    for locale in LOCALES:
        assert set(tpl.BUILT_INS[locale].templates) == set(ALL_IDS)


def test_every_builtin_is_versioned_data() -> None:
    for path in tpl.TEMPLATE_DIR.glob("*.toml"):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        assert data["locale"] == path.stem
        for template_id, t in data["templates"].items():
            assert isinstance(t["version"], int) and t["version"] >= 1, template_id
    assert {(t.id, t.locale) for t in tpl.builtins()} == {(i, loc) for i in ALL_IDS for loc in LOCALES}
    # v1: the hard-coded texts; v3: the e-mails print their unsubscribe link; +1: the complaint line; +1: the
    # customer portal link ({{ portal_url }})
    assert {t.id: t.version for t in tpl.builtins() if t.id in TEMPLATE_IDS} == {
        "pre_due.sms": 4, "reminder.sms": 4, "pre_due.email": 5, "reminder.email": 5}


@pytest.mark.parametrize("template_id", TEMPLATE_IDS)
@pytest.mark.parametrize("locale", LOCALES)
def test_template_has_opt_out_amount_due_date_account_ref_and_no_forbidden_words(template_id: str,
                                                                                 locale: str) -> None:
    rendered = render(template_id, ctx(locale))
    body = rendered.body
    assert has_opt_out(body, locale)
    assert "1,234.56 CNY" in body
    assert DUE[locale] in body
    assert ("尾号8842" if locale == "zh-CN" else "ending 8842") in body
    assert forbidden_in(full_text(rendered)) == []
    assert ("投诉" if locale == "zh-CN" else "complaints") in body
    assert tpl.BUILT_INS[locale].default_lender in body


@pytest.mark.parametrize("template_id", ALL_IDS)
@pytest.mark.parametrize("locale", LOCALES)
def test_without_an_account_ref_no_number_is_named(template_id: str, locale: str) -> None:
    rendered = render(template_id, ctx(locale, account_ref=None))
    text = full_text(rendered)
    assert ("您的账户" if locale == "zh-CN" else "your account") in text.lower()
    assert "尾号" not in text and "ending" not in text
    # digits only for the amount, the date and (reminders) the days past due
    stripped = text.replace("1,234.56", "").replace(DUE[locale], "").replace("12", "")
    assert re.search(r"[0-9]", stripped) is None, stripped


@pytest.mark.parametrize("locale", LOCALES)
def test_the_context_carries_no_internal_account_id(locale: str) -> None:
    assert "account_id" not in TemplateContext.__dataclass_fields__
    with pytest.raises(TypeError):
        TemplateContext(account_id="6222020012345678", account_ref=None, days_past_due=1,  # type: ignore[call-arg]
                        overdue_minor=1, currency="CNY", due_date=date(2026, 1, 1), locale=locale)


def test_reminders_say_how_late_pre_due_says_when_it_is_due() -> None:
    assert "逾期12天" in render("reminder.sms", ctx("zh-CN")).body
    assert "12 days past due" in render("reminder.sms", ctx("en")).body
    assert "1 day past due" in render("reminder.sms", ctx("en", days_past_due=1)).body
    assert "1 days" not in render("reminder.email", ctx("en", days_past_due=1)).body
    assert "到期日为2026年3月1日" in render("pre_due.sms", ctx("zh-CN", days_past_due=0)).body
    assert "is due on March 1, 2026" in render("pre_due.sms", ctx("en", days_past_due=0)).body


@pytest.mark.parametrize("template_id", [*PRE_DUE, *REMINDERS, *AGENT_TEMPLATE_IDS])
@pytest.mark.parametrize("locale", LOCALES)
def test_at_dpd_0_nothing_says_overdue(template_id: str, locale: str) -> None:
    """The scheduler requests pre_due.* at DPD 0; a reminder.* at DPD 0 says the same as pre_due."""
    rendered = render(template_id, ctx(locale, days_past_due=0))
    text = full_text(rendered).lower()
    assert [w for w in OVERDUE_WORDS if w in text] == []
    assert "0 day" not in text and "0天" not in text
    assert DUE[locale].lower() in rendered.body.lower() and "1,234.56 CNY" in rendered.body
    if template_id.startswith("reminder."):
        assert rendered == render(template_id.replace("reminder.", "pre_due."), ctx(locale, days_past_due=0))


@pytest.mark.parametrize("locale", LOCALES)
def test_pre_due_never_says_overdue_whatever_the_dpd(locale: str) -> None:
    for template_id in PRE_DUE:
        text = full_text(render(template_id, ctx(locale, days_past_due=30))).lower()
        assert [w for w in OVERDUE_WORDS if w in text] == []


def test_sms_has_no_subject_email_has_one() -> None:
    for locale in LOCALES:
        for template_id in ("reminder.sms", "pre_due.sms", *AGENT_TEMPLATE_IDS):
            assert render(template_id, ctx(locale)).subject == ""
        for email in ("reminder.email", "pre_due.email"):
            subject = render(email, ctx(locale)).subject
            assert subject and "8842" in subject
            assert "\n" not in subject


def test_zh_templates_are_chinese_and_polite_en_templates_english() -> None:
    for template_id in TEMPLATE_IDS:
        assert "尊敬的客户" in render(template_id, ctx("zh-CN")).body
    assert render("reminder.sms", ctx("zh-CN")).body.startswith("【缓催】")
    assert render("reminder.sms", ctx("en")).body.startswith("Gentle Collections reminder:")
    assert render("pre_due.sms", ctx("en")).body.startswith("Gentle Collections reminder:")
    assert render("reminder.email", ctx("en")).body.startswith("Dear customer")
    assert render("pre_due.email", ctx("en")).body.startswith("Dear customer")
    assert "Your account ending 8842 was due" in render("reminder.email", ctx("en")).body
    assert "Your account was due" in render("reminder.email", ctx("en", account_ref=None)).body
    assert render("reminder.sms", ctx("zh-CN")).body.endswith("回复TD退订")


def test_a_locale_other_than_zh_renders_in_english_and_zh_variants_in_chinese() -> None:
    assert render("reminder.sms", ctx("fr")) == render("reminder.sms", ctx("en"))
    assert render("reminder.sms", ctx("zh")) == render("reminder.sms", ctx("zh-CN"))


@pytest.mark.parametrize(("currency", "minor", "text"),
                         [("CNY", 250000, "2,500.00"), ("JPY", 123456, "123,456"), ("KWD", 1234567, "1,234.567")])
@pytest.mark.parametrize("template_id", ALL_IDS)
@pytest.mark.parametrize("locale", LOCALES)
def test_amount_uses_the_currency_exponent(template_id: str, locale: str, currency: str, minor: int,
                                          text: str) -> None:
    body = render(template_id, ctx(locale, currency=currency, overdue_minor=minor)).body
    assert f"{text} {currency}" in body


@pytest.mark.parametrize("locale", LOCALES)
def test_babel_agrees_with_format_amount_for_every_iso_currency(locale: str) -> None:
    """babel formats with the ISO 4217 exponent of shared.money, never CLDR's (IDR 2 digits, not 0)."""
    from shared.money import _MINOR_DIGITS
    for currency in _MINOR_DIGITS:
        for minor in (0, 5, 123456, 10**13 + 7):
            assert tpl.format_money(minor, currency, locale) == f"{format_amount(minor, currency)} {currency}"
    assert tpl.format_money(123456, "IDR", locale) == "1,234.56 IDR"


def test_help_line_is_normalised_by_phonenumbers() -> None:
    zh = render("reminder.sms", ctx("zh-CN", help_line="400-888-8888")).body
    assert "（400 888 8888）" in zh
    assert "95588" in render("reminder.sms", ctx("zh-CN", help_line="95588")).body
    assert "+86 400 888 8888" in render("reminder.sms", ctx("en", help_line="+864008888888")).body
    assert "(202) 555-0173" in render("reminder.email", ctx("en", help_line="+1 202 555 0173")).body
    with pytest.raises(ValueError, match="help line"):
        render("reminder.sms", ctx("en", help_line="12"))
    assert tpl.format_phone("+44 20 7946 0958", "zh-CN") == "+44 20 7946 0958"


def test_a_lender_is_named() -> None:
    body = render("reminder.sms", ctx("zh-CN", lender="示例银行")).body
    assert body.startswith("【示例银行】") and "示例银行客服" in body
    assert "Example Bank" in render("pre_due.email", ctx("en", lender="Example Bank")).body


def test_a_render_the_lint_refuses_raises_content_rejected() -> None:
    """A lender name that says something forbidden makes the message unsendable (a ValueError the
    dispatcher's prepare_messages reports as 'not sendable' for that row)."""
    with pytest.raises(ContentRejected, match="impersonation") as refused:
        render("reminder.sms", ctx("zh-CN", lender="人民法院执行局"))
    assert isinstance(refused.value, ValueError)
    assert {f.rule for f in refused.value.findings} >= {"impersonation"}
    with pytest.raises(ContentRejected):
        render("reminder.sms", ctx("en", lender="Police Debt Unit"))


@pytest.mark.parametrize("template_id", ["nope", "pre_due", "reminder", "system.opt_out_confirmation"])
@pytest.mark.parametrize("locale", LOCALES)
def test_unknown_template_raises_key_error(template_id: str, locale: str) -> None:
    with pytest.raises(KeyError):
        render(template_id, ctx(locale))


def _data(locale: str) -> dict[str, object]:
    return tomllib.loads((tpl.TEMPLATE_DIR / f"{locale}.toml").read_text(encoding="utf-8"))


@pytest.mark.parametrize(("change", "error"), [
    (lambda t: t.update(body=t["body"].replace("回复TD退订", "")), ContentRejected),           # no opt-out
    (lambda t: t.update(body=t["body"].replace("如已还款", "否则将起诉您。如已还款")), ContentRejected),  # threat
    (lambda t: t.update(body=t["body"].replace("{{ lender }}", "某机构")), ContentRejected),   # no lender
    (lambda t: t.update(body=t["body"] + "{{ ''.__class__ }}"), TemplateSourceError),
    (lambda t: t.update(body=t["body"] + "{{ account_id }}"), TemplateSourceError),
    (lambda t: t.update(subject="x"), ValueError),
    (lambda t: t.update(version=0), ValueError),
])
def test_a_builtin_that_fails_does_not_load(change: object, error: type[Exception]) -> None:
    data = _data("zh-CN")
    change(data["templates"]["reminder.sms"])  # type: ignore[index, operator]
    with pytest.raises(error):
        tpl.load_locale(data, "zh-CN.toml")


def test_the_shipped_files_load() -> None:
    for locale in LOCALES:
        assert tpl.load_locale(_data(locale), f"{locale}.toml").locale == locale


@PROPS
@given(template_id=st.sampled_from(ALL_IDS), locale=st.sampled_from(LOCALES),
       account_ref=st.none() | st.from_regex(r"[0-9]{2,6}", fullmatch=True),
       dpd=st.integers(0, 3650), minor=st.integers(1, 10**12),
       currency=st.sampled_from(["CNY", "USD", "JPY", "KWD", "IDR", "BHD"]),
       due=st.dates(date(2000, 1, 1), date(2100, 1, 1)))
def test_every_rendering_keeps_content_rules(template_id: str, locale: str, account_ref: str | None, dpd: int,
                                             minor: int, currency: str, due: date) -> None:
    assert is_currency(currency)
    c = ctx(locale, account_ref=account_ref, days_past_due=dpd, overdue_minor=minor, currency=currency,
            due_date=due)
    rendered = render(template_id, c)
    if template_id in TEMPLATE_IDS:
        assert has_opt_out(rendered.body, locale)
    assert f"{format_amount(minor, currency)} {currency}" in rendered.body
    assert tpl.BUILT_INS[locale].values(c)["due_date"] in rendered.body
    if account_ref is not None:
        assert account_ref in rendered.body
    assert forbidden_in(full_text(rendered)) == []
    if dpd == 0 or template_id.startswith("pre_due."):
        assert [w for w in OVERDUE_WORDS if w in full_text(rendered).lower()] == []
    assert render(template_id, replace(c)) == rendered  # deterministic


def test_the_lint_verdict_follows_the_wording_not_the_digits() -> None:
    """Verdicts are cached per wording (amount, date and an all-digit reference made canonical): a reference
    made of letters is linted as written."""
    from services.channels.domain.templates import ContentRejected

    for ref in ("8842", "0001", "123456"):
        assert "ending" in render("reminder.sms", TemplateContext(ref, 5, 12_345, "CNY", date(2026, 3, 1), "en")).body
    with pytest.raises(ContentRejected):
        render("reminder.sms", TemplateContext("JAIL", 5, 12_345, "CNY", date(2026, 3, 1), "en"))

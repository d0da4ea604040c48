"""Unit tests for message templates (services/channels/domain/templates.py) against CN-CONTENT."""

from __future__ import annotations

import re
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.channels.domain.templates import TEMPLATE_IDS, Rendered, TemplateContext, render
from shared.money import format_amount

PROPS = settings(max_examples=200, deadline=None, database=None)
REMINDERS = ["reminder.sms", "reminder.email"]
PRE_DUE = ["pre_due.sms", "pre_due.email"]
LOCALES = ["zh-CN", "en"]
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


@pytest.mark.parametrize("template_id", TEMPLATE_IDS)
@pytest.mark.parametrize("locale", LOCALES)
def test_template_has_opt_out_amount_due_date_account_ref_and_no_forbidden_words(template_id: str,
                                                                                 locale: str) -> None:
    rendered = render(template_id, ctx(locale))
    body = rendered.body
    assert has_opt_out(body, locale)
    assert "1,234.56 CNY" in body
    assert "2026-03-01" in body
    assert ("尾号8842" if locale == "zh-CN" else "ending 8842") in body
    assert forbidden_in(full_text(rendered)) == []


@pytest.mark.parametrize("template_id", TEMPLATE_IDS)
@pytest.mark.parametrize("locale", LOCALES)
def test_without_an_account_ref_no_number_is_named(template_id: str, locale: str) -> None:
    rendered = render(template_id, ctx(locale, account_ref=None))
    text = full_text(rendered)
    assert ("您的账户" if locale == "zh-CN" else "your account") in text.lower()
    assert "尾号" not in text and "ending" not in text
    # digits only for the amount, the date and (reminders) the days past due
    stripped = text.replace("1,234.56", "").replace("2026-03-01", "").replace("12", "")
    assert re.search(r"[0-9]", stripped) is None, stripped


@pytest.mark.parametrize("template_id", TEMPLATE_IDS)
@pytest.mark.parametrize("locale", LOCALES)
def test_the_context_carries_no_internal_account_id(template_id: str, locale: str) -> None:
    assert "account_id" not in TemplateContext.__dataclass_fields__
    with pytest.raises(TypeError):
        TemplateContext(account_id="6222020012345678", account_ref=None, days_past_due=1,  # type: ignore[call-arg]
                        overdue_minor=1, currency="CNY", due_date=date(2026, 1, 1), locale=locale)


def test_reminders_say_how_late_pre_due_says_when_it_is_due() -> None:
    assert "逾期12天" in render("reminder.sms", ctx("zh-CN")).body
    assert "12 days past due" in render("reminder.sms", ctx("en")).body
    assert "1 day past due" in render("reminder.sms", ctx("en", days_past_due=1)).body
    assert "到期日为2026-03-01" in render("pre_due.sms", ctx("zh-CN", days_past_due=0)).body
    assert "is due on 2026-03-01" in render("pre_due.sms", ctx("en", days_past_due=0)).body


@pytest.mark.parametrize("template_id", [*PRE_DUE, *REMINDERS])
@pytest.mark.parametrize("locale", LOCALES)
def test_at_dpd_0_nothing_says_overdue(template_id: str, locale: str) -> None:
    """The scheduler requests pre_due.* at DPD 0; a reminder.* at DPD 0 says the same as pre_due."""
    rendered = render(template_id, ctx(locale, days_past_due=0))
    text = full_text(rendered).lower()
    assert [w for w in OVERDUE_WORDS if w in text] == []
    assert "0 day" not in text and "0天" not in text
    assert "2026-03-01" in rendered.body and "1,234.56 CNY" in rendered.body
    if template_id.startswith("reminder."):
        assert rendered == render(template_id.replace("reminder.", "pre_due."), ctx(locale, days_past_due=0))


def test_sms_has_no_subject_email_has_one() -> None:
    for locale in LOCALES:
        for sms in ("reminder.sms", "pre_due.sms"):
            assert render(sms, ctx(locale)).subject == ""
        for email in ("reminder.email", "pre_due.email"):
            subject = render(email, ctx(locale)).subject
            assert subject and "8842" in subject
            assert "\n" not in subject


def test_zh_templates_are_chinese_and_polite_en_templates_english() -> None:
    for template_id in TEMPLATE_IDS:
        assert "尊敬的客户" in render(template_id, ctx("zh-CN")).body
    assert render("reminder.sms", ctx("en")).body.startswith("Reminder:")
    assert render("pre_due.sms", ctx("en")).body.startswith("Reminder:")
    assert render("reminder.email", ctx("en")).body.startswith("Dear customer")
    assert render("pre_due.email", ctx("en")).body.startswith("Dear customer")
    assert "Your account ending 8842 was due" in render("reminder.email", ctx("en")).body
    assert "Your account was due" in render("reminder.email", ctx("en", account_ref=None)).body


@pytest.mark.parametrize(("currency", "minor", "text"),
                         [("JPY", 123456, "123,456"), ("KWD", 1234567, "1,234.567")])
@pytest.mark.parametrize("template_id", TEMPLATE_IDS)
@pytest.mark.parametrize("locale", LOCALES)
def test_amount_uses_the_currency_exponent(template_id: str, locale: str, currency: str, minor: int,
                                          text: str) -> None:
    body = render(template_id, ctx(locale, currency=currency, overdue_minor=minor)).body
    assert f"{text} {currency}" in body


@pytest.mark.parametrize("template_id", ["call.script", "field.visit", "nope", "pre_due", "reminder"])
@pytest.mark.parametrize("locale", LOCALES)
def test_unknown_template_raises_key_error(template_id: str, locale: str) -> None:
    with pytest.raises(KeyError):
        render(template_id, ctx(locale))


@PROPS
@given(template_id=st.sampled_from(TEMPLATE_IDS), locale=st.sampled_from(LOCALES),
       account_ref=st.none() | st.from_regex(r"[0-9]{2,6}", fullmatch=True),
       dpd=st.integers(0, 3650), minor=st.integers(1, 10**12),
       currency=st.sampled_from(["CNY", "USD", "JPY", "KWD"]),
       due=st.dates(date(2000, 1, 1), date(2100, 1, 1)))
def test_every_rendering_keeps_content_rules(template_id: str, locale: str, account_ref: str | None, dpd: int,
                                             minor: int, currency: str, due: date) -> None:
    rendered = render(template_id, ctx(locale, account_ref=account_ref, days_past_due=dpd, overdue_minor=minor,
                                       currency=currency, due_date=due))
    assert has_opt_out(rendered.body, locale)
    assert format_amount(minor, currency) in rendered.body
    assert f"{due:%Y-%m-%d}" in rendered.body
    if account_ref is not None:
        assert account_ref in rendered.body
    assert forbidden_in(full_text(rendered)) == []
    if dpd == 0 or template_id.startswith("pre_due."):
        assert [w for w in OVERDUE_WORDS if w in full_text(rendered).lower()] == []

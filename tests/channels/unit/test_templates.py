"""Unit tests for message templates (services/channels/domain/templates.py) against CN-CONTENT."""

from __future__ import annotations

import re
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.channels.domain.templates import Rendered, TemplateContext, render
from shared.money import format_amount

PROPS = settings(max_examples=200, deadline=None, database=None)
TEMPLATE_IDS = ["reminder.sms", "reminder.email"]
LOCALES = ["zh-CN", "en"]
FORBIDDEN_ZH = ["法院", "公安", "警察", "起诉", "拘留", "坐牢", "逮捕", "律师函", "通讯录", "曝光", "手续费",
                "违约金", "借钱", "贷款还"]
FORBIDDEN_EN = ["police", "court", "arrest", "jail", "prison", "lawsuit", "sue", "legal action", "criminal",
                "fee", "fees", "borrow", "penalty"]


def ctx(locale: str, **overrides: object) -> TemplateContext:
    values: dict[str, object] = {
        "account_id": "6222020012345678", "days_past_due": 12, "overdue_minor": 123456, "currency": "CNY",
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


@pytest.mark.parametrize("template_id", TEMPLATE_IDS)
@pytest.mark.parametrize("locale", LOCALES)
def test_template_has_opt_out_amount_tail_and_no_forbidden_words(template_id: str, locale: str) -> None:
    rendered = render(template_id, ctx(locale))
    body = rendered.body
    assert has_opt_out(body, locale)
    assert "1,234.56" in body
    assert "CNY" in body
    assert "5678" in body
    assert "6222020012345678" not in full_text(rendered)  # only the tail, never the full account number
    assert "12" in body  # days past due
    assert "2026-03-01" in body
    assert forbidden_in(full_text(rendered)) == []


def test_sms_has_no_subject_email_has_one() -> None:
    for locale in LOCALES:
        assert render("reminder.sms", ctx(locale)).subject == ""
        subject = render("reminder.email", ctx(locale)).subject
        assert subject
        assert "5678" in subject


def test_zh_templates_are_chinese_and_en_templates_english() -> None:
    assert "尊敬的客户" in render("reminder.sms", ctx("zh-CN")).body
    assert "尊敬的客户" in render("reminder.email", ctx("zh-CN")).body
    assert render("reminder.sms", ctx("en")).body.startswith("Reminder:")
    assert render("reminder.email", ctx("en")).body.startswith("Dear customer")


@pytest.mark.parametrize(("currency", "minor", "text"),
                         [("JPY", 123456, "123,456"), ("KWD", 1234567, "1,234.567")])
@pytest.mark.parametrize("template_id", TEMPLATE_IDS)
@pytest.mark.parametrize("locale", LOCALES)
def test_amount_uses_the_currency_exponent(template_id: str, locale: str, currency: str, minor: int,
                                          text: str) -> None:
    body = render(template_id, ctx(locale, currency=currency, overdue_minor=minor)).body
    assert f"{text} {currency}" in body


@pytest.mark.parametrize("template_id", ["call.script", "field.visit", "nope"])
@pytest.mark.parametrize("locale", LOCALES)
def test_unknown_template_raises_key_error(template_id: str, locale: str) -> None:
    with pytest.raises(KeyError):
        render(template_id, ctx(locale))


@PROPS
@given(template_id=st.sampled_from(TEMPLATE_IDS), locale=st.sampled_from(LOCALES),
       account_id=st.text(alphabet="0123456789ABCDEF", min_size=4, max_size=32),
       dpd=st.integers(0, 3650), minor=st.integers(1, 10**12),
       currency=st.sampled_from(["CNY", "USD", "JPY", "KWD"]),
       due=st.dates(date(2000, 1, 1), date(2100, 1, 1)))
def test_every_rendering_keeps_content_rules(template_id: str, locale: str, account_id: str, dpd: int,
                                             minor: int, currency: str, due: date) -> None:
    rendered = render(template_id, ctx(locale, account_id=account_id, days_past_due=dpd, overdue_minor=minor,
                                       currency=currency, due_date=due))
    assert has_opt_out(rendered.body, locale)
    assert format_amount(minor, currency) in rendered.body
    assert account_id[-4:] in rendered.body
    assert forbidden_in(full_text(rendered)) == []

"""Tenants' branding and template versions in the domain (services/channels/domain/templates.py): checked when
published like the built-ins, applied when rendering, the built-in and default lender otherwise."""

from __future__ import annotations

from datetime import date

import pytest

from services.channels.domain import templates as tpl
from services.channels.domain.content.engine import TemplateSourceError
from services.channels.domain.inbound import confirmation_text

BRANDING = tpl.check_branding(lender={"zh-CN": "示例银行", "en": "Example Bank"}, help_line="400 888 8888",
                              complaint_line="+86 10 8888 8888")
MINE = ("【{{ lender }}】{% if account_ref %}尾号{{ account_ref }}{% else %}您的账户{% endif %}已逾期"
        "{{ days_past_due }}天，待还{{ amount }}。如有困难可联系我们协商；如有疑问或投诉，请联系{{ lender }}客服"
        "{% if help_line %}（{{ help_line }}）{% endif %}。回复TD退订")


def ctx(locale: str = "zh-CN", **kw: object) -> tpl.TemplateContext:
    values: dict[str, object] = {"account_ref": "8842", "days_past_due": 12, "overdue_minor": 123456,
                                 "currency": "CNY", "due_date": date(2026, 3, 1), "locale": locale} | kw
    return tpl.TemplateContext(**values)  # type: ignore[arg-type]


def test_phone_numbers_are_normalised_or_refused() -> None:
    assert (BRANDING.help_line, BRANDING.complaint_line) == ("+864008888888", "+861088888888")
    assert tpl.normalise_phone("+1 202-555-0173") == "+12025550173"
    for bad in ("call us", "12345", "+86 1"):
        with pytest.raises(ValueError):
            tpl.normalise_phone(bad)


def test_lender_names_are_linted_per_locale() -> None:
    with pytest.raises(tpl.BrandingRejected) as refused:
        tpl.check_branding(lender={"zh-CN": "XX人民法院", "en": "Police Collections"}, help_line="4008888888",
                           complaint_line=None)
    assert {(f.part, f.rule) for f in refused.value.findings} == {("lender.zh-CN", "impersonation"),
                                                                  ("lender.en", "impersonation")}


def test_rendering_uses_the_branding_and_the_signature_follows_the_zh_name() -> None:
    content = tpl.TenantContent(BRANDING)
    zh = tpl.render("reminder.sms", ctx(), content).body
    assert zh.startswith("【示例银行】") and "示例银行客服（400 888 8888），投诉电话010 8888 8888" in zh
    en = tpl.render("reminder.sms", ctx("en"), content).body
    assert en.startswith("Example Bank reminder") and "+86 400 888 8888 (complaints: +86 10 8888 8888)" in en
    assert tpl.render("reminder.sms", ctx()).body.startswith("【缓催】")  # no content: the defaults
    assert tpl.render("reminder.sms", ctx(), tpl.NO_CONTENT).body.startswith("【缓催】")
    assert confirmation_text("zh-CN", "示例银行").startswith("【示例银行】")
    assert confirmation_text("zh-CN").startswith("【缓催】")


def test_a_tenant_version_applies_to_its_id_and_locale_only() -> None:
    mine = tpl.check_version(template_id="reminder.sms", locale="zh-CN", channel="sms", subject="", body=MINE,
                             version=1, branding=BRANDING)
    content = tpl.TenantContent(BRANDING, {("reminder.sms", "zh-CN"): mine})
    assert tpl.render("reminder.sms", ctx(), content).body.startswith("【示例银行】尾号8842已逾期12天")
    assert tpl.render("reminder.sms", ctx("en"), content).body.startswith("Example Bank reminder")  # built-in
    # at DPD 0 a reminder is the pre-due text: the built-in, as the tenant has no pre_due.sms of its own
    assert "逾期" not in tpl.render("reminder.sms", ctx(days_past_due=0), content).body


def test_a_tenant_version_is_checked_like_a_builtin() -> None:
    with pytest.raises(tpl.ContentRejected) as refused:
        tpl.check_version(template_id="reminder.sms", locale="zh-CN", channel="sms", subject="",
                          body=MINE.replace("回复TD退订", ""), version=1)
    assert {f.rule for f in refused.value.findings} == {"opt_out"}
    # an e-mail must print its unsubscribe link
    body = ("{{ lender }}: {{ amount }} due on {{ due_date }}. Finding it hard? Contact us to agree a plan. "
            "Questions or complaints: contact {{ lender }}. Reply STOP to opt out.")
    with pytest.raises(tpl.ContentRejected) as refused:
        tpl.check_version(template_id="pre_due.email", locale="en", channel="email", subject="Due", body=body,
                          version=1)
    assert {f.rule for f in refused.value.findings} == {"unsubscribe_link"}
    tpl.check_version(template_id="pre_due.email", locale="en", channel="email", subject="Due",
                      body=body + " {{ unsubscribe_url }}", version=1)
    with pytest.raises(TemplateSourceError):
        tpl.check_version(template_id="reminder.sms", locale="zh-CN", channel="email", subject="x", body=MINE,
                          version=1)
    with pytest.raises(KeyError):
        tpl.check_version(template_id="nope.sms", locale="zh-CN", channel="sms", subject="", body=MINE, version=1)

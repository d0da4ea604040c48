"""A tenant's branding and its own template versions through channels' app (issue 7): PUT/GET /v1/branding,
POST/GET /v1/templates/{id}/versions and GET /v1/templates in force. Published only when linted like the
built-ins (refused with 422 and the findings, nothing stored), versioned with who and why, audited, roles
checked (403, nothing stored), and never visible to another tenant."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, text

from shared.audit import AuditEntry
from shared.db import table_of
from tests.api.support import ServiceApi, Tenant, assert_problem
from tests.api.test_api_access import bearer, issue

pytestmark = pytest.mark.integration
BRANDING = {"lender": {"zh-CN": "示例银行", "en": "Example Bank"}, "help_line": "400 888 8888",
            "complaint_line": "+86 10 8888 8888", "reason": "our brand"}
REMINDER_ZH = ("【{{ lender }}】您好，{% if account_ref %}您尾号{{ account_ref }}的账户{% else %}您的账户{% endif %}"
               "已逾期{{ days_past_due }}天，待还{{ amount }}。如有困难，可联系我们协商还款计划；如有疑问或投诉，"
               "请联系{{ lender }}客服{% if help_line %}（{{ help_line }}）{% endif %}。回复TD退订")
EMAIL_EN_SUBJECT = "{{ lender }}: {{ amount }} is due"
EMAIL_EN = ("Dear customer,\n\n{{ amount }} on {% if account_ref %}your account ending {{ account_ref }}"
            "{% else %}your account{% endif %} is due on {{ due_date }}. Finding it hard? Contact us to agree a plan. "
            "Questions or complaints: contact {{ lender }}{% if help_line %} on {{ help_line }}{% endif %}.\n\n"
            "{% if unsubscribe_url %}Unsubscribe: {{ unsubscribe_url }}{% else %}Reply STOP to opt out.{% endif %}")


def version(locale: str = "zh-CN", **body: Any) -> dict[str, Any]:
    return {"channel": "sms", "locale": locale, "body": REMINDER_ZH, "reason": "our wording"} | body


async def audit_rows(channels: ServiceApi, tenant: Tenant) -> list[Any]:
    audit = table_of(AuditEntry)
    async with channels.runtime.sessions() as session:
        return list((await session.execute(select(audit).where(audit.c.tenant == tenant.id)
                                           .order_by(audit.c.id))).all())


async def stored(channels: ServiceApi, tenant: Tenant) -> tuple[int, int]:
    async with channels.runtime.sessions() as session:
        brandings = (await session.execute(text("SELECT count(*) FROM channel_brandings WHERE tenant = :t"),
                                           {"t": tenant.id})).scalar_one()
        versions = (await session.execute(text("SELECT count(*) FROM channel_template_versions WHERE tenant = :t"),
                                          {"t": tenant.id})).scalar_one()
    return int(brandings), int(versions)


async def test_branding_defaults_then_versions_with_who_and_why(channels: ServiceApi, tenant_a: Tenant) -> None:
    first = (await channels.client.get("/v1/branding", headers=tenant_a.headers)).json()
    assert first["version"] == 0 and first["lender"] == {"zh-CN": "缓催", "en": "Gentle Collections"}
    assert first["help_line"] is None
    put = await channels.client.put("/v1/branding", json=BRANDING, headers=tenant_a.headers)
    assert put.status_code == 201, put.text
    assert put.json() | {"created_at": None} == {
        "version": 1, "lender": {"zh-CN": "示例银行", "en": "Example Bank"}, "help_line": "+864008888888",
        "complaint_line": "+861088888888", "created_by": f"static:{tenant_a.id}", "reason": "our brand",
        "created_at": None}
    again = await channels.client.put("/v1/branding", headers=tenant_a.headers, json=BRANDING | {
        "lender": {"zh-CN": "示例银行信用卡中心", "en": "Example Bank Cards"}, "complaint_line": None,
        "reason": "renamed"})
    assert again.status_code == 201 and again.json()["version"] == 2
    now = (await channels.client.get("/v1/branding", headers=tenant_a.headers)).json()
    assert (now["version"], now["lender"]["zh-CN"], now["complaint_line"]) == (2, "示例银行信用卡中心", None)
    history = (await channels.client.get("/v1/branding/versions", headers=tenant_a.headers)).json()
    assert [(h["version"], h["reason"]) for h in history] == [(2, "renamed"), (1, "our brand")]
    assert [(r.action, r.subject, r.reason) for r in await audit_rows(channels, tenant_a)] == [
        ("branding.publish", "branding:v1", "our brand"), ("branding.publish", "branding:v2", "renamed")]


@pytest.mark.parametrize(("lender", "field", "rule"), [
    ({"zh-CN": "人民法院", "en": "Example Bank"}, "lender.zh-CN", "impersonation"),
    ({"zh-CN": "示例银行", "en": "City Police"}, "lender.en", "impersonation"),
    ({"zh-CN": "示例银行"}, "lender.en", "lender"),
    ({"zh-CN": "【示例】银行", "en": "Example Bank"}, "lender.zh-CN", "lender"),
])
async def test_a_lender_name_the_lint_refuses_is_a_422_and_nothing_is_stored(
        channels: ServiceApi, tenant_a: Tenant, lender: dict[str, str], field: str, rule: str) -> None:
    body = assert_problem(await channels.client.put("/v1/branding", json=BRANDING | {"lender": lender},
                                                    headers=tenant_a.headers), 422)
    assert (field, rule) in {(f["field"], f["rule"]) for f in body["findings"]}, body
    assert (await channels.client.get("/v1/branding", headers=tenant_a.headers)).json()["version"] == 0
    assert await stored(channels, tenant_a) == (0, 0) and await audit_rows(channels, tenant_a) == []


async def test_a_help_line_that_is_no_phone_number_is_refused(channels: ServiceApi, tenant_a: Tenant) -> None:
    for phones in ({"help_line": "call us"}, {"help_line": "+86 400 888 8888", "complaint_line": "12345"}):
        body = assert_problem(await channels.client.put("/v1/branding", json=BRANDING | phones,
                                                        headers=tenant_a.headers), 422)
        assert {f["rule"] for f in body["findings"]} == {"phone"}
    assert await stored(channels, tenant_a) == (0, 0)


async def test_a_tenant_template_is_published_versioned_and_shown_in_force(channels: ServiceApi,
                                                                           tenant_a: Tenant) -> None:
    path = "/v1/templates/reminder.sms/versions"
    first = await channels.client.post(path, json=version(), headers=tenant_a.headers)
    assert first.status_code == 201, first.text
    assert (first.json()["version"], first.json()["created_by"]) == (1, f"static:{tenant_a.id}")
    second = await channels.client.post(path, json=version(reason="shorter"), headers=tenant_a.headers)
    assert second.status_code == 201 and second.json()["version"] == 2
    mail = await channels.client.post("/v1/templates/reminder.email/versions", headers=tenant_a.headers,
                                      json=version("en", channel="email", subject=EMAIL_EN_SUBJECT, body=EMAIL_EN))
    assert mail.status_code == 201, mail.text
    listed = {(t["id"], t["locale"]): t for t in
              (await channels.client.get("/v1/templates", headers=tenant_a.headers)).json()["templates"]}
    assert (listed[("reminder.sms", "zh-CN")]["source"], listed[("reminder.sms", "zh-CN")]["version"]) == ("tenant", 2)
    assert listed[("reminder.sms", "zh-CN")]["body"] == REMINDER_ZH
    assert listed[("reminder.sms", "zh-CN")]["builtin_version"] == 4  # v4: the portal link
    assert listed[("reminder.email", "en")]["source"] == "tenant"
    assert {k for k, t in listed.items() if t["source"] == "tenant"} == {("reminder.sms", "zh-CN"),
                                                                          ("reminder.email", "en")}
    history = (await channels.client.get(path, headers=tenant_a.headers)).json()
    assert [(h["version"], h["locale"], h["reason"]) for h in history] == [
        (2, "zh-CN", "shorter"), (1, "zh-CN", "our wording")]
    assert (await channels.client.get(path, params={"locale": "en"}, headers=tenant_a.headers)).json() == []
    assert [r.subject for r in await audit_rows(channels, tenant_a)] == [
        "template:reminder.sms@zh-CN:v1", "template:reminder.sms@zh-CN:v2", "template:reminder.email@en:v1"]


@pytest.mark.parametrize(("template_id", "body", "rule"), [
    ("reminder.sms", version(body=REMINDER_ZH.replace("如有困难", "再不还款将起诉您，如有困难")), "threat"),
    ("reminder.sms", version(body=REMINDER_ZH.replace("回复TD退订", "")), "opt_out"),
    ("reminder.sms", version(body=REMINDER_ZH.replace("{{ lender }}", "示例银行")), "lender"),
    ("reminder.email", version("en", channel="email", subject=EMAIL_EN_SUBJECT,
                               body=EMAIL_EN.replace("Unsubscribe: {{ unsubscribe_url }}", "Reply STOP to opt out.")),
     "unsubscribe_link"),
])
async def test_a_template_the_lint_refuses_is_a_422_with_findings_and_nothing_stored(
        channels: ServiceApi, tenant_a: Tenant, template_id: str, body: dict[str, Any], rule: str) -> None:
    problem = assert_problem(await channels.client.post(f"/v1/templates/{template_id}/versions", json=body,
                                                        headers=tenant_a.headers), 422)
    assert rule in {f["rule"] for f in problem["findings"]}, problem
    assert await stored(channels, tenant_a) == (0, 0) and await audit_rows(channels, tenant_a) == []
    listed = (await channels.client.get("/v1/templates", headers=tenant_a.headers)).json()["templates"]
    assert {t["source"] for t in listed} == {"builtin"}


async def test_wrong_channel_subject_syntax_or_template_id(channels: ServiceApi, tenant_a: Tenant) -> None:
    post = channels.client.post
    for body in (version(channel="email"), version(subject="Hello"),
                 version(channel="email", subject="", body=EMAIL_EN, locale="en"),
                 version(body=REMINDER_ZH + "{{ ''.__class__ }}")):
        template_id = "reminder.email" if body["channel"] == "email" else "reminder.sms"
        assert "findings" not in assert_problem(await post(f"/v1/templates/{template_id}/versions", json=body,
                                                           headers=tenant_a.headers), 422)
    assert_problem(await post("/v1/templates/nope.sms/versions", json=version(), headers=tenant_a.headers), 404)
    assert_problem(await channels.client.get("/v1/templates/nope.sms/versions", headers=tenant_a.headers), 404)
    assert await stored(channels, tenant_a) == (0, 0)


async def test_a_tenant_never_sees_another_tenants_branding_or_templates(
        channels: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    assert (await channels.client.put("/v1/branding", json=BRANDING, headers=tenant_a.headers)).status_code == 201
    path = "/v1/templates/reminder.sms/versions"
    assert (await channels.client.post(path, json=version(), headers=tenant_a.headers)).status_code == 201
    b = tenant_b.headers
    assert (await channels.client.get("/v1/branding", headers=b)).json()["version"] == 0
    assert (await channels.client.get("/v1/branding/versions", headers=b)).json() == []
    assert (await channels.client.get(path, headers=b)).json() == []
    listed = (await channels.client.get("/v1/templates", headers=b)).json()["templates"]
    assert {t["source"] for t in listed} == {"builtin"}
    # B's own first version is its version 1, whatever A published
    assert (await channels.client.post(path, json=version(), headers=b)).json()["version"] == 1
    assert await stored(channels, tenant_b) == (0, 1) and await stored(channels, tenant_a) == (1, 1)


async def test_roles_a_missing_one_is_a_403_and_stores_nothing(channels: ServiceApi, infra: Any,
                                                               tenant_a: Tenant) -> None:
    agent = bearer(await issue(infra, tenant_a.id, {"agent", "partner"}, principal="agent-7"))
    lead = bearer(await issue(infra, tenant_a.id, {"supervisor"}, principal="lead-wang"))
    officer = bearer(await issue(infra, tenant_a.id, {"compliance"}, principal="officer-li"))
    path = "/v1/templates/reminder.sms/versions"
    assert_problem(await channels.client.put("/v1/branding", json=BRANDING, headers=agent), 403)
    assert_problem(await channels.client.post(path, json=version(), headers=agent), 403)
    assert_problem(await channels.client.post(path, json=version(), headers=lead), 403)  # templates: compliance
    assert await stored(channels, tenant_a) == (0, 0) and await audit_rows(channels, tenant_a) == []
    # reads take any role
    assert (await channels.client.get("/v1/branding", headers=agent)).status_code == 200
    assert (await channels.client.get(path, headers=agent)).status_code == 200
    # branding: compliance or supervisor; templates: compliance
    put = await channels.client.put("/v1/branding", json=BRANDING, headers=lead)
    assert (put.status_code, put.json()["created_by"]) == (201, "lead-wang")
    posted = await channels.client.post(path, json=version(), headers=officer)
    assert (posted.status_code, posted.json()["created_by"]) == (201, "officer-li")
    assert [(r.principal, r.action) for r in await audit_rows(channels, tenant_a)] == [
        ("lead-wang", "branding.publish"), ("officer-li", "template.publish")]
    documented = channels.app.openapi()["paths"]
    assert documented["/v1/branding"]["put"]["x-required-roles"] == ["compliance", "supervisor"]
    assert documented["/v1/templates/{template_id}/versions"]["post"]["x-required-roles"] == ["compliance"]


async def test_a_refused_branding_leaves_the_published_templates_alone(channels: ServiceApi,
                                                                       tenant_a: Tenant) -> None:
    path = "/v1/templates/reminder.sms/versions"
    assert (await channels.client.post(path, json=version(), headers=tenant_a.headers)).status_code == 201
    body = assert_problem(await channels.client.put("/v1/branding", headers=tenant_a.headers, json=BRANDING | {
        "lender": {"zh-CN": "公安催收中心", "en": "Example Bank"}}), 422)
    assert {f["field"] for f in body["findings"]} == {"lender.zh-CN"}
    assert await stored(channels, tenant_a) == (0, 1)

"""Channels' template routes through the ASGI app: GET /v1/templates (the built-in templates and their
versions) and POST /v1/templates/preview (a tenant's template source rendered with sample data in the
Jinja2 sandbox and linted against CN-CONTENT; nothing stored). Hostile sources (sandbox escapes, output
bombs, NUL bytes, huge or deeply nested templates) get a 422 problem, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from services.channels.domain import templates as tpl
from tests.api.support import ServiceApi, Tenant, assert_problem

pytestmark = pytest.mark.integration
PREVIEW = "/v1/templates/preview"
POLITE_EN = ("{{ lender }} reminder: {{ amount }} on {% if account_ref %}your account ending {{ account_ref }}"
             "{% else %}your account{% endif %} is due on {{ due_date }}. Finding it hard? Contact us to agree a "
             "plan. Questions or complaints: contact {{ lender }}{% if help_line %} on {{ help_line }}{% endif %}. "
             "Reply STOP to opt out.")
POLITE_ZH = ("【{{ lender }}】尊敬的客户，{% if account_ref %}您尾号{{ account_ref }}的账户"
             "{% else %}您的账户{% endif %}已逾期{{ days_past_due }}天，待还金额{{ amount }}。"
             "如有困难，可联系我们协商；如有疑问或投诉，请联系{{ lender }}客服。回复TD退订")


async def preview(channels: ServiceApi, tenant: Tenant, **body: Any) -> Any:
    body = {"locale": "en", "channel": "sms", **body}
    return await channels.client.post(PREVIEW, json=body, headers=tenant.headers)


async def test_the_builtin_templates_are_listed_with_versions(channels: ServiceApi, tenant_a: Tenant) -> None:
    response = await channels.client.get("/v1/templates", headers=tenant_a.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    listed = {(t["id"], t["locale"]): t for t in body["templates"]}
    assert set(listed) == {(i, loc) for i in (*tpl.TEMPLATE_IDS, *tpl.AGENT_TEMPLATE_IDS) for loc in tpl.LOCALES}
    assert listed[("reminder.sms", "zh-CN")]["version"] == 4  # v4: the portal link
    assert listed[("reminder.sms", "zh-CN")]["source"] == "builtin"
    assert listed[("reminder.sms", "zh-CN")]["channel"] == "sms"
    assert "{{ lender }}" in listed[("reminder.email", "en")]["body"]
    assert "amount" in body["variables"] and body["lexicons"] == {"zh-CN": 1, "en": 1}


async def test_the_routes_need_an_api_key(channels: ServiceApi) -> None:
    assert_problem(await channels.client.get("/v1/templates"), 401)
    assert_problem(await channels.client.post(PREVIEW, json={"body": "x", "locale": "en", "channel": "sms"}), 401)


async def test_a_polite_template_previews_with_defaults_and_no_findings(channels: ServiceApi,
                                                                        tenant_a: Tenant) -> None:
    response = await preview(channels, tenant_a, body=POLITE_EN)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["findings"] == [] and answer["sendable"] is True
    assert answer["body"].startswith("Gentle Collections reminder: 1,234.56 CNY on your account ending 8842")
    assert answer["subject"] == ""
    zh = (await preview(channels, tenant_a, body=POLITE_ZH, locale="zh-CN",
                        sample={"lender": "示例银行", "days_past_due": 3, "currency": "KWD",
                                "overdue_minor": 1234567, "account_ref": None})).json()
    assert zh["sendable"] is True, zh
    assert zh["body"].startswith("【示例银行】尊敬的客户，您的账户已逾期3天，待还金额1,234.567 KWD。")
    assert "尾号" not in zh["body"]


async def test_sample_data_is_formatted_for_the_locale(channels: ServiceApi, tenant_a: Tenant) -> None:
    answer = (await preview(channels, tenant_a, body=POLITE_EN, channel="email",
                            subject="Due {{ due_date }}: {{ amount }}",
                            sample={"due_date": "2026-03-01", "currency": "JPY", "overdue_minor": 123456,
                                    "help_line": "+1 202 555 0173"})).json()
    assert answer["subject"] == "Due March 1, 2026: 123,456 JPY"
    assert "on (202) 555-0173" in answer["body"]


async def test_forbidden_content_is_reported_with_spans(channels: ServiceApi, tenant_a: Tenant) -> None:
    source = "【{{ lender }}】再不还款将通知您的家人并起诉，另收手续费。建议您借钱还款。"
    answer = (await preview(channels, tenant_a, body=source, locale="zh-CN")).json()
    assert answer["sendable"] is False
    rules = {f["rule"] for f in answer["findings"]}
    assert rules >= {"threat", "extra_fee", "borrow_to_repay", "help", "complaint", "opt_out"}
    for f in answer["findings"]:
        if f["span"] is not None:
            start, end = f["span"]
            assert answer["body"][start:end] == f["match"]
    en = (await preview(channels, tenant_a, body=POLITE_EN.replace("Finding", "The police will arrest you. Finding"),
                        sample={"lender": "Example Bank"})).json()
    assert {f["rule"] for f in en["findings"]} == {"impersonation", "threat"} and en["sendable"] is False


async def test_warnings_leave_it_sendable(channels: ServiceApi, tenant_a: Tenant) -> None:
    answer = (await preview(channels, tenant_a, body=POLITE_EN.replace("Finding", "Final notice. Finding"))).json()
    assert answer["sendable"] is True
    assert [(f["rule"], f["severity"]) for f in answer["findings"]] == [("pressure", "warning")]


HOSTILE = [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'] }}",
    "{{ self._TemplateReference__context }}",
    "{{ config }}",
    "{{ request }}",
    "{{ 'a' * 1000000000 }}",
    "{{ 9 ** 9 ** 9 }}",
    "{{ lender|center(1000000000) }}",
    "{{ lender|attr('__class__') }}",
    "{{ '%999999999s' % lender }}",
    "{{ '{0.__class__}'.format(lender) }}",
    "{% for i in range(99999999) %}x{% endfor %}",
    "{% set x = lender %}{{ x }}",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "{% include 'x' %}",
    "{% extends 'x' %}",
    "{% import 'x' as y %}",
    "{% raw %}{% endraw %}{{ account_id }}",
    "{{ lender",
    "{% if %}",
    "a\u0000b",
    "{{ lender }}\u0007",
    "{% if lender %}" * 2000,
    "{% if lender %}" * 1000 + "x" + "{% endif %}" * 1000,
    "{{ " + "(" * 3000 + "lender" + ")" * 3000 + " }}",
    "{{ " + "not " * 2000 + "lender }}",
    "{% if days_past_due > 'x' %}y{% endif %}",
    "{{ lender|default(lender.__class__) }}",
    "{{ days_past_due is divisibleby(0) }}",
]


@pytest.mark.parametrize("source", HOSTILE, ids=range(len(HOSTILE)))
async def test_hostile_sources_are_a_422_problem(channels: ServiceApi, tenant_a: Tenant, source: str) -> None:
    problem = assert_problem(await preview(channels, tenant_a, body=source), 422)
    assert "__class__" not in problem["detail"] or "not part of" in problem["detail"] or "allowed" in problem["detail"]
    assert len(problem["detail"]) < 600


async def test_hostile_subjects_and_sizes_are_a_422_problem(channels: ServiceApi, tenant_a: Tenant) -> None:
    assert_problem(await preview(channels, tenant_a, body=POLITE_EN, channel="email",
                                 subject="{{ ''.__class__ }}"), 422)
    assert_problem(await preview(channels, tenant_a, body=POLITE_EN, subject="x"), 422)  # no subject for SMS
    assert_problem(await preview(channels, tenant_a, body="x" * 100_000), 422)
    assert_problem(await preview(channels, tenant_a, body=POLITE_EN, channel="email", subject="x" * 5_000), 422)
    # a template within the size limit whose output would be huge
    assert_problem(await preview(channels, tenant_a, body="{{ lender }}" * 700, sample={"lender": "x" * 100}), 422)


@pytest.mark.parametrize("change", [
    {"locale": "fr"}, {"channel": "fax"}, {"body": ""}, {"sample": {"currency": "XYZ"}},
    {"sample": {"currency": "cny"}}, {"sample": {"help_line": "12"}}, {"sample": {"account_ref": "1234-5678-90"}},
    {"sample": {"days_past_due": -1}}, {"sample": {"overdue_minor": 10**20}}, {"sample": {"unknown": 1}},
])
async def test_invalid_requests_are_a_422_problem(channels: ServiceApi, tenant_a: Tenant,
                                                  change: dict[str, Any]) -> None:
    body: dict[str, Any] = {"body": POLITE_EN, "locale": "en", "channel": "sms", **change}
    response = await channels.client.post(PREVIEW, json=body, headers=tenant_a.headers)
    if change == {"sample": {"unknown": 1}}:  # unknown sample fields are ignored
        assert response.status_code == 200, response.text
        return
    assert_problem(response, 422)


async def test_a_preview_stores_nothing(channels: ServiceApi, tenant_a: Tenant) -> None:
    before = await channels.outbox(tenant_a)
    assert (await preview(channels, tenant_a, body=POLITE_EN)).status_code == 200
    assert await channels.outbox(tenant_a) == before
    listed = (await channels.client.get("/v1/templates", headers=tenant_a.headers)).json()["templates"]
    assert all(t["id"] in (*tpl.TEMPLATE_IDS, *tpl.AGENT_TEMPLATE_IDS) for t in listed)

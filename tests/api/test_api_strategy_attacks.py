"""An outside tester's attacks on the strategy, segmentation-policy, scorecard and due-event routes: bad input must
never be a 500 (nor a 503), a refusal stores nothing, a tenant never sees or changes another's data, the documented
limits hold, and big but allowed inputs answer quickly. The bugs it found in review are fixed."""

from __future__ import annotations

import copy
import json
import time
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from services.scheduler.db.models import Strategy, StrategyAssignment
from services.scheduler.domain.strategies.builtin import DOCUMENT as BUILTIN
from services.segmentation.db.models import SegmentationPolicyRow
from services.segmentation.domain.scorecard import load_default
from shared.audit import AuditEntry
from tests.api.support import ServiceApi, Tenant, assert_problem, unique
from tests.api.test_api_scheduler_strategies import email_first, seed, segmented
from tests.api.test_api_segmentation import due_item

pytestmark = pytest.mark.integration

JSON = {"content-type": "application/json"}


async def raw(api: ServiceApi, method: str, path: str, text: str, tenant: Tenant) -> Any:
    """Send a body as written (NaN, Infinity, huge numbers, deep nesting: what a JSON library would not make)."""
    return await api.client.request(method, path, content=text.encode(), headers={**tenant.headers, **JSON})


async def publish(api: ServiceApi, tenant: Tenant, name: str, document: Any, reason: str = "test") -> Any:
    return await api.client.put(f"/v1/strategies/{name}", json={"document": document, "reason": reason},
                                headers=tenant.headers)


async def assign(api: ServiceApi, tenant: Tenant, body: dict[str, Any], reason: str = "test") -> Any:
    return await api.client.put("/v1/strategy-assignment", json={**body, "reason": reason}, headers=tenant.headers)


async def strategies_of(api: ServiceApi, tenant: Tenant) -> list[Any]:
    return await api.all(select(Strategy).where(Strategy.tenant == tenant.id))


async def assignments_of(api: ServiceApi, tenant: Tenant) -> list[Any]:
    return await api.all(select(StrategyAssignment).where(StrategyAssignment.tenant == tenant.id))


async def audit_of(api: ServiceApi, tenant: Tenant) -> list[Any]:
    return await api.all(select(AuditEntry).where(AuditEntry.tenant == tenant.id))


def not_5xx(response: Any) -> None:
    assert response.status_code < 500, (response.status_code, response.text)


def big_strategy() -> dict[str, Any]:
    """A valid strategy at the limits: 20 steps in each of the 18 cells (SMS and e-mail only, each with two
    fallbacks, one unconditional step first and 19 escalations on amount), larger than 64 KB as JSON."""
    doc: dict[str, Any] = {"description": "big", "segments": {}}
    for segment in ("prime", "standard", "high_risk"):
        cells: dict[str, list[dict[str, Any]]] = {}
        for bucket, (low, high) in {"0": (-30, 0), "1-15": (1, 15), "16-30": (16, 30), "31-60": (31, 60),
                                    "61-90": (61, 90), "90+": (91, 120)}.items():
            tag = bucket.replace("+", "p")
            steps = [{"id": f"s{tag}-base", "day": low, "channel": "sms", "template": "reminder.sms"}]
            for i in range(19):
                steps.append({"id": f"s{tag}-{i:02d}-{'x' * 20}", "day": min(low + i, high), "channel": "email",
                              "template": f"reminder.email.{'t' * 40}", "at": "10:00", "retries": 3,
                              "retry_after_minutes": 5,
                              "fallback": [{"channel": "sms", "template": f"reminder.sms.{'u' * 40}"}],
                              "when": {"overdue_min_minor": 1000 * (i + 1)}})
            cells[bucket] = steps
        doc["segments"][segment] = cells
    return doc


# ---------------------------------------------------------------- scheduler: numbers out of range


@pytest.mark.parametrize("version", [2**31, 2**63])
async def test_a_champion_version_out_of_range_is_refused_not_an_outage(
        scheduler: ServiceApi, tenant_a: Tenant, version: int) -> None:
    response = await assign(scheduler, tenant_a, {"champion": {"strategy": "mine", "version": version}})
    assert_problem(response, 422)
    assert await assignments_of(scheduler, tenant_a) == []


async def test_a_challenger_version_out_of_range_is_refused_not_an_outage(
        scheduler: ServiceApi, tenant_a: Tenant) -> None:
    response = await assign(scheduler, tenant_a, {
        "champion": {"strategy": "builtin", "version": 1}, "experiment": "exp",
        "challengers": [{"arm": "a", "strategy": "mine", "version": 2**63, "share_bp": {"prime": 100}}]})
    assert_problem(response, 422)
    assert await assignments_of(scheduler, tenant_a) == []


@pytest.mark.parametrize("text", [
    '{"champion": {"strategy": "builtin", "version": 1.0}, "reason": "x"}',
    '{"champion": {"strategy": "builtin", "version": true}, "reason": "x"}',
    '{"champion": {"strategy": "builtin", "version": NaN}, "reason": "x"}',
    '{"champion": {"strategy": "builtin", "version": Infinity}, "reason": "x"}',
    '{"champion": {"strategy": "builtin", "version": 1e400}, "reason": "x"}',
    '{"champion": {"strategy": "builtin", "version": -1}, "reason": "x"}',
    '{"champion": {"strategy": "builtin", "version": 1}, "experiment": "e", "challengers": [{"arm": "a", '
    '"strategy": "builtin", "version": 1, "share_bp": {"prime": NaN}}], "reason": "x"}',
    '{"champion": {"strategy": "builtin", "version": 1}, "experiment": "e", "challengers": [{"arm": "a", '
    '"strategy": "x", "version": 1, "share_bp": {"prime": 10001}}], "reason": "x"}',
    '{"champion": {"strategy": "builtin", "version": 1}, "experiment": "e", "challengers": [{"arm": "a", '
    '"strategy": "x", "version": 1, "share_bp": {"prime": true}}], "reason": "x"}',
    '{"champion": {"strategy": "builtin", "version": 1}, "experiment": "e", "challengers": [{"arm": "champion", '
    '"strategy": "x", "version": 1, "share_bp": {"prime": 1}}], "reason": "x"}',
    '{"champion": {"strategy": "builtin", "version": 1}, "experiment": "e\\u0000", "challengers": [{"arm": "a", '
    '"strategy": "x", "version": 1, "share_bp": {"prime": 1}}], "reason": "x"}',
    '{"champion": {"strategy": "built\\u0000in", "version": 1}, "reason": "x"}',
    '{"champion": "builtin@1", "reason": "x"}',
    '{"champion": {"strategy": "builtin", "version": 1}, "challengers": {}, "reason": "x"}',
    '{"champion": {"strategy": "builtin", "version": 1}, "challengers": [1, 2], "experiment": "e", "reason": "x"}',
])
async def test_odd_numbers_and_shapes_in_an_assignment_are_refused_and_store_nothing(
        scheduler: ServiceApi, tenant_a: Tenant, text: str) -> None:
    assert_problem(await raw(scheduler, "PUT", "/v1/strategy-assignment", text, tenant_a), 422)
    assert await assignments_of(scheduler, tenant_a) == []
    assert await audit_of(scheduler, tenant_a) == []


async def test_an_assignment_with_an_unknown_field_is_refused(scheduler: ServiceApi, tenant_a: Tenant) -> None:
    response = await assign(scheduler, tenant_a, {"champion": {"strategy": "builtin", "version": 1},
                                                  "challenger": [{"arm": "typo"}]})
    assert_problem(response, 422)
    assert await assignments_of(scheduler, tenant_a) == []


# ---------------------------------------------------------------- scheduler: NUL and unicode in what is stored


async def test_a_nul_in_a_strategy_reason_is_refused_and_stores_nothing(scheduler: ServiceApi,
                                                                        tenant_a: Tenant) -> None:
    assert_problem(await publish(scheduler, tenant_a, "nul", BUILTIN, reason="why\x00not"), 422)
    assert await strategies_of(scheduler, tenant_a) == []
    assert await audit_of(scheduler, tenant_a) == []


async def test_a_nul_in_a_strategy_description_is_refused(scheduler: ServiceApi, tenant_a: Tenant) -> None:
    doc = copy.deepcopy(BUILTIN)
    doc["description"] = "bad\x00nul"
    assert_problem(await publish(scheduler, tenant_a, "nul", doc), 422)
    assert await strategies_of(scheduler, tenant_a) == []


async def test_unicode_descriptions_and_reasons_are_kept_as_sent(scheduler: ServiceApi, tenant_a: Tenant) -> None:
    doc = copy.deepcopy(BUILTIN)
    doc["description"] = "电子邮件优先 🚀 \u202e" * 20
    made = await publish(scheduler, tenant_a, "uni", doc, reason="理由 ✓")
    assert made.status_code == 201, made.text
    got = (await scheduler.client.get("/v1/strategies/uni/versions/1", headers=tenant_a.headers)).json()
    assert (got["document"]["description"], got["reason"]) == (doc["description"], "理由 ✓")


async def test_a_nul_in_a_promotion_reason_is_refused_and_stores_nothing(
        scheduler: ServiceApi, tenant_a: Tenant) -> None:
    assert (await publish(scheduler, tenant_a, "email-first", email_first())).status_code == 201
    started = await assign(scheduler, tenant_a, {
        "champion": {"strategy": "builtin", "version": 1}, "experiment": "exp",
        "challengers": [{"arm": "mail", "strategy": "email-first", "version": 1, "share_bp": {"prime": 100}}]})
    assert started.status_code == 201, started.text
    response = await scheduler.client.post("/v1/strategy-assignment/promote", headers=tenant_a.headers,
                                           json={"arm": "mail", "reason": "x\x00y"})
    assert_problem(response, 422)
    assert len(await assignments_of(scheduler, tenant_a)) == 1
    # an arm with a NUL (or unicode) is simply not a running arm
    for arm in ("ma\x00il", "邮件"):
        assert_problem(await scheduler.client.post("/v1/strategy-assignment/promote", headers=tenant_a.headers,
                                                   json={"arm": arm, "reason": "x"}), 409)


# ---------------------------------------------------------------- scheduler: size, nesting, speed


async def test_a_deeply_nested_document_is_refused_quickly_and_never_a_500(
        scheduler: ServiceApi, tenant_a: Tenant) -> None:
    for depth in (100, 500, 900, 990, 2000, 100_000):
        nested = "[" * depth + "]" * depth
        for method, path in (("PUT", "/v1/strategies/deep"), ("POST", "/v1/strategy-checks")):
            text = f'{{"document": {{"description": "x", "segments": {{"prime": {nested}}}}}, "reason": "x"}}'
            started = time.monotonic()
            response = await raw(scheduler, method, path, text, tenant_a)
            assert time.monotonic() - started < 5
            not_5xx(response)
            if method == "POST" and response.status_code == 200:
                assert response.json()["valid"] is False
    assert await strategies_of(scheduler, tenant_a) == []


async def test_a_strategy_at_the_step_limit_answers_quickly(scheduler: ServiceApi, tenant_a: Tenant) -> None:
    doc = big_strategy()
    started = time.monotonic()
    checked = await scheduler.client.post("/v1/strategy-checks", json={"document": doc}, headers=tenant_a.headers)
    assert checked.status_code == 200 and time.monotonic() - started < 3, checked.text
    # 21 steps in a cell are refused
    over = copy.deepcopy(doc)
    over["segments"]["prime"]["1-15"].append({"id": "one-more", "day": 15, "channel": "sms",
                                              "template": "reminder.sms"})
    refused = (await scheduler.client.post("/v1/strategy-checks", json={"document": over},
                                           headers=tenant_a.headers)).json()
    assert refused["valid"] is False and any("at most 20 steps" in e or "larger than 64 KB" in e
                                             for e in refused["errors"])


async def test_strategy_checks_apply_the_64_kb_limit_as_publishing_does(
        scheduler: ServiceApi, tenant_a: Tenant) -> None:
    doc = big_strategy()
    assert len(json.dumps(doc, separators=(",", ":"))) > 64 * 1024
    refused = assert_problem(await publish(scheduler, tenant_a, "big", doc), 422)
    assert any("64 KB" in e["msg"] for e in refused["errors"])
    assert await strategies_of(scheduler, tenant_a) == []
    checked = (await scheduler.client.post("/v1/strategy-checks", json={"document": doc},
                                           headers=tenant_a.headers)).json()
    assert checked["valid"] is False


async def test_the_64_kb_limit_counts_the_document_not_its_escaped_form(
        scheduler: ServiceApi, tenant_a: Tenant) -> None:
    big = big_strategy()
    for segment in big["segments"].values():
        for steps in segment.values():
            del steps[12:]
    compact = len(json.dumps(big, ensure_ascii=False, separators=(",", ":")).encode())
    spaced = len(json.dumps(big))
    assert compact <= 64 * 1024 < spaced, (compact, spaced)
    made = await publish(scheduler, tenant_a, "fits", big)
    assert made.status_code == 201, made.text


# ---------------------------------------------------------------- scheduler: paths and query parameters


@pytest.mark.parametrize(("path", "status"), [
    ("/v1/strategies/..%2f..%2fetc/versions", 404),
    ("/v1/strategies/%2e%2e/versions", 422),
    ("/v1/strategies/UPPER/versions", 422),
    ("/v1/strategies/%E9%82%AE%E4%BB%B6/versions", 422),
    ("/v1/strategies/a%00b/versions", 422),
    (f"/v1/strategies/{'a' * 65}/versions", 422),
    ("/v1/strategies/builtin/versions/0", 422),
    ("/v1/strategies/builtin/versions/true", 422),
    (f"/v1/strategies/builtin/versions/{2**31}", 422),
    (f"/v1/strategies/builtin/versions/{2**63}", 422),
    ("/v1/strategies/builtin/versions/NaN", 422),
    ("/v1/strategies/builtin/versions/2", 404),
    ("/v1/strategies?limit=0", 422),
    ("/v1/strategies?limit=501", 422),
    (f"/v1/strategies?limit={2**64}", 422),
    ("/v1/strategy-assignment/versions?limit=-1", 422),
    ("/v1/experiments/none-such/report", 404),
    ("/v1/experiments/%00/report", 422),
    ("/v1/experiments/UP/report", 422),
    (f"/v1/experiments/{'e' * 65}/report", 422),
    ("/v1/accounts/none-such/timeline", 404),
    ("/v1/accounts/%E8%B4%A6%E6%88%B7/timeline", 404),
])
async def test_odd_paths_and_queries_are_4xx(scheduler: ServiceApi, tenant_a: Tenant, path: str,
                                             status: int) -> None:
    response = await scheduler.client.get(path, headers=tenant_a.headers)
    assert_problem(response, status)


async def test_a_timeline_for_an_account_id_with_a_nul_is_404(scheduler: ServiceApi, tenant_a: Tenant) -> None:
    assert_problem(await scheduler.client.get("/v1/accounts/a%00b/timeline", headers=tenant_a.headers), 404)


async def test_the_timeline_refuses_odd_days_and_strategies_and_hides_other_tenants(
        scheduler: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    account = unique("ACC")
    await seed(scheduler, [segmented(tenant_a, account, segment="high_risk", dpd=3)])
    base = f"/v1/accounts/{account}/timeline"
    for query in ("days=0", "days=181", f"days={2**63}", "days=1.5", "days=NaN", "days=true", "days=-1",
                  "strategy=builtin", "strategy=builtin@", "strategy=@1", "strategy=Builtin@1",
                  "strategy=builtin@1234567890", "strategy=builtin@1%00", "strategy=%E9%82%AE@1"):
        assert_problem(await scheduler.client.get(f"{base}?{query}", headers=tenant_a.headers), 422)
    for query in ("strategy=builtin@0", "strategy=builtin@2", "strategy=none@999999999"):
        assert_problem(await scheduler.client.get(f"{base}?{query}", headers=tenant_a.headers), 404)
    # the longest dry run answers quickly and plans each step at most once
    started = time.monotonic()
    long = await scheduler.client.get(f"{base}?days=180", headers=tenant_a.headers)
    assert long.status_code == 200 and time.monotonic() - started < 3, long.text
    ids = [s["contact_id"] for s in long.json()["steps"]]
    assert len(ids) == len(set(ids))
    # tenant b neither sees the account nor can dry-run its own strategy on it
    assert (await publish(scheduler, tenant_b, "b-only", BUILTIN)).status_code == 201
    assert_problem(await scheduler.client.get(base, headers=tenant_b.headers), 404)
    assert_problem(await scheduler.client.get(f"{base}?strategy=b-only@1", headers=tenant_b.headers), 404)
    assert_problem(await scheduler.client.get(f"{base}?strategy=b-only@1", headers=tenant_a.headers), 404)


async def test_the_timeline_of_a_big_strategy_over_180_days_is_quick(scheduler: ServiceApi,
                                                                     tenant_a: Tenant) -> None:
    doc = big_strategy()
    for segment in doc["segments"].values():  # under 64 KB so that it can be published
        for steps in segment.values():
            del steps[4:]
    made = await publish(scheduler, tenant_a, "big", doc)
    assert made.status_code == 201, made.text
    account = unique("ACC")
    await seed(scheduler, [segmented(tenant_a, account, segment="prime", dpd=1)])
    started = time.monotonic()
    response = await scheduler.client.get(f"/v1/accounts/{account}/timeline?days=180&strategy=big@1",
                                          headers=tenant_a.headers)
    assert response.status_code == 200 and time.monotonic() - started < 3, response.text


# ---------------------------------------------------------------- scheduler: tenancy of experiments


async def test_another_tenant_cannot_see_report_or_promote_an_experiment(
        scheduler: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    assert (await publish(scheduler, tenant_a, "email-first", email_first())).status_code == 201
    started = await assign(scheduler, tenant_a, {
        "champion": {"strategy": "builtin", "version": 1}, "experiment": "secret-exp",
        "challengers": [{"arm": "mail", "strategy": "email-first", "version": 1, "share_bp": {"prime": 5000}}]})
    assert started.status_code == 201, started.text
    await seed(scheduler, [segmented(tenant_a, unique("ACC"), segment="prime") for _ in range(5)])
    assert (await scheduler.client.get("/v1/experiments", headers=tenant_b.headers)).json() == []
    assert_problem(await scheduler.client.get("/v1/experiments/secret-exp/report", headers=tenant_b.headers), 404)
    assert_problem(await scheduler.client.post("/v1/strategy-assignment/promote", headers=tenant_b.headers,
                                               json={"arm": "mail", "reason": "x"}), 409)
    assert (await scheduler.client.get("/v1/strategy-assignment", headers=tenant_b.headers)).json()["version"] == 0
    # b's own experiment of the same name reads only b's steps
    assert (await publish(scheduler, tenant_b, "email-first", email_first())).status_code == 201
    assert (await assign(scheduler, tenant_b, {
        "champion": {"strategy": "builtin", "version": 1}, "experiment": "secret-exp",
        "challengers": [{"arm": "mail", "strategy": "email-first", "version": 1,
                         "share_bp": {"prime": 5000}}]})).status_code == 201
    report = await scheduler.client.get("/v1/experiments/secret-exp/report", headers=tenant_b.headers)
    assert report.status_code == 200, report.text
    assert report.json()["steps_read"] == 0 and all(a["accounts"] == 0 for a in report.json()["arms"])
    mine = (await scheduler.client.get("/v1/experiments/secret-exp/report", headers=tenant_a.headers)).json()
    assert sum(a["accounts"] for a in mine["arms"]) == 5
    # promoting twice: the second finds no running experiment
    first = await scheduler.client.post("/v1/strategy-assignment/promote", headers=tenant_a.headers,
                                        json={"arm": "mail", "reason": "x"})
    assert first.status_code == 201, first.text
    assert_problem(await scheduler.client.post("/v1/strategy-assignment/promote", headers=tenant_a.headers,
                                               json={"arm": "mail", "reason": "x"}), 409)


async def test_the_report_over_many_accounts_is_quick(scheduler: ServiceApi, tenant_a: Tenant) -> None:
    assert (await publish(scheduler, tenant_a, "email-first", email_first())).status_code == 201
    assert (await assign(scheduler, tenant_a, {
        "champion": {"strategy": "builtin", "version": 1}, "experiment": "many",
        "challengers": [{"arm": "mail", "strategy": "email-first", "version": 1,
                         "share_bp": {"prime": 5000, "standard": 5000, "high_risk": 5000}}]})).status_code == 201
    await seed(scheduler, [segmented(tenant_a, unique("ACC"), segment=("prime", "standard", "high_risk")[i % 3])
                           for i in range(600)])
    started = time.monotonic()
    report = await scheduler.client.get("/v1/experiments/many/report", headers=tenant_a.headers)
    assert report.status_code == 200 and time.monotonic() - started < 5, report.text
    assert sum(a["accounts"] for a in report.json()["arms"]) == 600


# ---------------------------------------------------------------- segmentation policy


POLICY = "/v1/segmentation-policy"


async def policies_of(api: ServiceApi, tenant: Tenant) -> list[Any]:
    return await api.all(select(SegmentationPolicyRow).where(SegmentationPolicyRow.tenant == tenant.id))


def rule(**when: Any) -> dict[str, Any]:
    return {"rules": [{"name": "r", "segment": "high_risk", "when": when}], "default": "standard"}


@pytest.mark.parametrize("text", [
    '{"rules": [{"name": "r", "segment": "prime", "when": {"propensity_min": NaN}}], "default": "standard"}',
    '{"rules": [{"name": "r", "segment": "prime", "when": {"propensity_max": Infinity}}], "default": "standard"}',
    '{"rules": [{"name": "r", "segment": "prime", "when": {"propensity_max": 1.5}}], "default": "standard"}',
    '{"rules": [{"name": "r", "segment": "prime", "when": {"dpd_min": NaN}}], "default": "standard"}',
    '{"rules": [{"name": "r", "segment": "prime", "when": {"dpd_min": 1.5}}], "default": "standard"}',
    '{"rules": [{"name": "r", "segment": "prime", "when": {"dpd_min": true}}], "default": "standard"}',
    '{"rules": [{"name": "r", "segment": "prime", "when": {"dpd_max": 36501}}], "default": "standard"}',
    '{"rules": [{"name": "r", "segment": "prime", "when": {"score_min": 1e400}}], "default": "standard"}',
    '{"rules": [{"name": "r", "segment": "prime", "when": {"overdue_min_minor": 10.5}}], "default": "standard"}',
    '{"rules": [{"name": "r", "segment": "prime", "when": {"overdue_min_minor": -1}}], "default": "standard"}',
    '{"rules": [{"name": "r", "segment": "prime", "when": {"payments_in_last_days": {"days": 3661, "min": 1}}}], '
    '"default": "standard"}',
    '{"rules": [{"name": "r", "segment": "prime", "when": {"payments_in_last_days": {"days": true, "min": 1}}}], '
    '"default": "standard"}',
    '{"rules": [{"name": "r", "segment": "prime", "when": {"previous_cures_min": NaN}}], "default": "standard"}',
    '{"rules": [{"name": "r", "segment": "prime", "when": {"tenure_days_min": -0.0}}], "default": "standard"}',
    '{"rules": [{"name": "r", "segment": "prime", "when": {"rating_in": ["A", null]}}], "default": "standard"}',
    '{"rules": [{"name": "r", "segment": "prime", "when": {"product_in": [1, {"a": NaN}]}}], "default": "standard"}',
    '{"rules": [{"name": "r", "segment": "prime", "when": []}], "default": "standard"}',
    '{"rules": [{"name": "r", "segment": "prime\\u0000"}], "default": "standard"}',
    '{"rules": [{"name": "", "segment": "prime"}], "default": "standard"}',
    '{"rules": [{"name": "default", "segment": "prime"}], "default": "standard"}',
    '{"rules": {}, "default": "standard"}',
    '{"rules": [], "default": {"segment": "standard", "why": NaN}}',
    '{"rules": [], "default": null}',
])
async def test_odd_numbers_and_shapes_in_a_policy_are_refused_by_publish_and_dry_run(
        segmentation: ServiceApi, tenant_a: Tenant, text: str) -> None:
    for method, path, extra in (("PUT", POLICY, '"reason": "x"'), ("POST", f"{POLICY}/dry-run", '"sample": 5')):
        response = await raw(segmentation, method, path, f'{{"document": {text}, {extra}}}', tenant_a)
        body = assert_problem(response, 422)
        assert body["title"] == "Segmentation policy refused", body
    assert await policies_of(segmentation, tenant_a) == []


@pytest.mark.parametrize("where", ["name", "why", "product", "reason"])
async def test_a_nul_in_a_policy_is_refused_and_stores_nothing(segmentation: ServiceApi, tenant_a: Tenant,
                                                              where: str) -> None:
    rule_ = {"name": "r\x00" if where == "name" else "r", "segment": "prime",
             "why": "w\x00" if where == "why" else "w",
             "when": {"product_in": ["card\x00" if where == "product" else "card"]}}
    body = {"document": {"rules": [rule_], "default": "standard"},
            "reason": "x\x00" if where == "reason" else "x"}
    response = await segmentation.client.put(POLICY, json=body, headers=tenant_a.headers)
    assert_problem(response, 422)
    assert await policies_of(segmentation, tenant_a) == []
    assert await audit_of(segmentation, tenant_a) == []


async def test_huge_whole_numbers_in_a_policy_do_not_break_publish_or_dry_run(
        segmentation: ServiceApi, tenant_a: Tenant) -> None:
    doc = rule(overdue_min_minor=2**63, outstanding_max_minor=10**30)
    for method, path, extra in (("POST", f"{POLICY}/dry-run", {"sample": 5}), ("PUT", POLICY, {"reason": "x"})):
        response = await segmentation.client.request(method, path, json={"document": doc, **extra},
                                                     headers=tenant_a.headers)
        not_5xx(response)
    current = await segmentation.client.get(POLICY, headers=tenant_a.headers)
    assert current.status_code == 200, current.text


@pytest.mark.parametrize("sample", [
    "0", "5001",
    "true", "1.5", "NaN", str(2**63), "\"10\"", "null"])
async def test_the_dry_run_sample_is_a_whole_number_in_range(segmentation: ServiceApi, tenant_a: Tenant,
                                                             sample: str) -> None:
    text = f'{{"document": {{"rules": [], "default": "standard"}}, "sample": {sample}}}'
    response = await raw(segmentation, "POST", f"{POLICY}/dry-run", text, tenant_a)
    assert_problem(response, 422)  # a whole JSON number only: not a boolean, nor a numeric string


async def test_a_policy_at_its_limits_is_quick_and_one_over_is_refused(segmentation: ServiceApi,
                                                                        tenant_a: Tenant) -> None:
    products = [f"p{j}" for j in range(10)]
    rules = [{"name": f"规则-{i}", "segment": "prime", "when": {"dpd_min": i, "product_in": products}, "why": "理由"}
             for i in range(200)]
    doc = {"rules": rules, "default": "standard"}
    started = time.monotonic()
    response = await segmentation.client.post(f"{POLICY}/dry-run", json={"document": doc, "sample": 5000},
                                              headers=tenant_a.headers)
    assert response.status_code == 200 and time.monotonic() - started < 5, response.text
    over = {"rules": [*rules, {"name": "one-more", "segment": "prime", "when": {"dpd_min": 1}}],
            "default": "standard"}
    body = assert_problem(await segmentation.client.put(POLICY, json={"document": over, "reason": "x"},
                                                        headers=tenant_a.headers), 422)
    assert "200" in body["detail"]
    deep = "[" * 5000 + "]" * 5000
    text = f'{{"document": {{"rules": [], "default": "standard", "x": {deep}}}, "reason": "x"}}'
    not_5xx(await raw(segmentation, "PUT", POLICY, text, tenant_a))
    assert await policies_of(segmentation, tenant_a) == []


# ---------------------------------------------------------------- scorecards


def scorecard(version: str, **changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(dict(load_default().document))
    doc["version"] = version
    return doc | changes


@pytest.mark.parametrize("text_of", [
    lambda v: f'{{"document": {{"format": "gentle-collections/scorecard", "version": "{v}", "intercept_points": NaN, '
              '"features": []}, "reason": "x"}',
    lambda v: f'{{"document": {{"format": "gentle-collections/scorecard", "version": "{v}", '
              f'"intercept_points": {2**63}, "features": []}}, "reason": "x"}}',
    lambda v: f'{{"document": {{"format": "gentle-collections/scorecard", "version": "{v}\\u0000", '
              '"features": []}, "reason": "x"}',
    lambda v: '{"document": {"format": "gentle-collections/scorecard", "version": "live", "features": []}, '
              '"reason": "x"}',
])
async def test_odd_scorecard_documents_are_refused_and_store_nothing(segmentation: ServiceApi,
                                                                     tenant_a: Tenant, text_of: Any) -> None:
    version = unique("v")
    assert_problem(await raw(segmentation, "POST", "/v1/scorecards", text_of(version), tenant_a), 422)
    listed = (await segmentation.client.get("/v1/scorecards", headers=tenant_a.headers)).json()
    assert listed["scorecards"] == []


@pytest.mark.parametrize("field", ["features", "metrics"])
async def test_a_deeply_nested_scorecard_is_refused_not_a_500(segmentation: ServiceApi, tenant_a: Tenant,
                                                             field: str) -> None:
    body = {"document": scorecard(unique("v")), "reason": "x"}
    body["document"][field] = "@@NESTED@@"
    text = json.dumps(body).replace('"@@NESTED@@"', "[" * 600 + "]" * 600)  # well within json's own depth
    assert_problem(await raw(segmentation, "POST", "/v1/scorecards", text, tenant_a), 422)
    listed = (await segmentation.client.get("/v1/scorecards", headers=tenant_a.headers)).json()
    assert listed["scorecards"] == []


async def test_scorecard_nuls_odd_versions_and_tenancy(segmentation: ServiceApi, tenant_a: Tenant,
                                                       tenant_b: Tenant) -> None:
    doc = copy.deepcopy(dict(load_default().document))
    doc["version"] = unique("v")
    # a NUL in the reason, or in a reason text of the document
    response = await segmentation.client.post("/v1/scorecards", json={"document": doc, "reason": "x\x00"},
                                              headers=tenant_a.headers)
    assert_problem(response, 422)
    assert (await segmentation.client.get("/v1/scorecards", headers=tenant_a.headers)).json()["scorecards"] == []
    made = await segmentation.client.post("/v1/scorecards", json={"document": doc, "reason": "ok"},
                                          headers=tenant_a.headers)
    assert made.status_code == 201, made.text
    again = await segmentation.client.post("/v1/scorecards", json={"document": doc, "reason": "ok"},
                                           headers=tenant_a.headers)
    assert_problem(again, 409)
    version = doc["version"]
    assert_problem(await segmentation.client.get(f"/v1/scorecards/{version}", headers=tenant_b.headers), 404)
    assert_problem(await segmentation.client.post(f"/v1/scorecards/{version}/promote", json={"reason": "x"},
                                                  headers=tenant_b.headers), 404)
    for path in ("/v1/scorecards/a%00b", "/v1/scorecards/%E7%89%88", f"/v1/scorecards/{'v' * 65}",
                 "/v1/scorecards/-x", "/v1/scorecards/.."):
        response = await segmentation.client.get(path, headers=tenant_a.headers)
        assert response.status_code in (404, 422), (path, response.status_code, response.text)
    promoted = await segmentation.client.post(f"/v1/scorecards/{version}/promote", json={"reason": "x\x00"},
                                              headers=tenant_a.headers)
    assert_problem(promoted, 422)
    live = (await segmentation.client.get("/v1/scorecards/live", headers=tenant_a.headers)).json()
    assert live["source"] == "default"


# ---------------------------------------------------------------- due events


async def test_due_events_with_odd_values_are_rejected_per_item(segmentation: ServiceApi, tenant_a: Tenant) -> None:
    bad = [due_item(amount_due_minor=2**63), due_item(amount_due_minor=1.5), due_item(due_date="9999-99-99"),
           due_item(currency="XXX\x00"), due_item(event_id="e" * 201), due_item(credit_score=True),
           due_item(amount_due_minor=2_000_000), due_item(contact={"name": ""})]
    good = due_item(event_id=unique("due"))
    response = await segmentation.client.post("/v1/due-events", json={"events": [good, *bad]},
                                              headers=tenant_a.headers)
    assert response.status_code == 200, response.text
    statuses = [r["status"] for r in response.json()["results"]]
    assert statuses[0] == "accepted"
    accepted = [b for s, b in zip(statuses[1:], bad, strict=True) if s != "rejected"]
    assert accepted == [], accepted
    assert len(await segmentation.outbox(tenant_a)) == 1


@pytest.mark.parametrize("change", [{"event_id": "e\x00vil"}, {"account_id": "a\x00b"}, {"customer_id": "c\x00"},
                                    {"product": "p\x00"}, {"amount_due_minor": True}, {"due_date": "0001-01-01"}],
                         ids=["event_id-nul", "account_id-nul", "customer_id-nul", "product-nul", "amount-true",
                              "due-year-1"])
async def test_a_bad_due_event_is_rejected_per_item(segmentation: ServiceApi, tenant_a: Tenant,
                                                   change: dict[str, Any]) -> None:
    good, bad = due_item(event_id=unique("due")), due_item(**change)
    response = await segmentation.client.post("/v1/due-events", json={"events": [good, bad]},
                                              headers=tenant_a.headers)
    assert response.status_code == 200, response.text
    assert [r["status"] for r in response.json()["results"]] == ["accepted", "rejected"]


async def test_due_events_far_ahead_or_unicode_are_not_a_500(segmentation: ServiceApi, tenant_a: Tenant) -> None:
    items = [due_item(due_date=(date.today() + timedelta(days=3650)).isoformat()),
             due_item(due_date="9999-12-31"), due_item(due_date=(date.today() - timedelta(days=400)).isoformat()),
             due_item(event_id="事件-🚀"), due_item(product="信用卡")]
    response = await segmentation.client.post("/v1/due-events", json={"events": items}, headers=tenant_a.headers)
    not_5xx(response)
    assert response.status_code == 200, response.text
    body = await raw(segmentation, "POST", "/v1/due-events", '{"events": [' + '{"a": 1},' * 1000 + '{"a": 1}]}',
                     tenant_a)
    assert_problem(body, 422)  # 1,001 items
    nested = "[" * 900 + "]" * 900
    not_5xx(await raw(segmentation, "POST", "/v1/due-events", f'{{"events": [{{"contact": {nested}}}]}}', tenant_a))


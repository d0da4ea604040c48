"""Segmentation policies over REST on the real database: published versions, refusals that name every reason and
store nothing, the strategist role, the audit log, the dry run (nothing stored) and tenancy; and accounts
classified by the published policy."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from services.segmentation import service
from services.segmentation.db.models import Account, SegmentationPolicyRow, SegmentChange
from services.segmentation.domain.policy import BUILTIN_DOCUMENT
from shared.access import store
from shared.audit import AuditEntry
from shared.contracts import topics
from shared.contracts.events import AccountOverdueV1
from shared.db import asyncpg_url
from shared.messaging import build_event
from tests.api.support import CIPHER, ServiceApi, Tenant, assert_problem, unique

pytestmark = pytest.mark.integration
PATH = "/v1/segmentation-policy"
# late accounts are high-risk, card holders with a good rating prime, everyone else standard
LATE_IS_HIGH_RISK = {
    "rules": [{"name": "late", "segment": "high_risk", "when": {"dpd_min": 30}, "why": "a month late"},
              {"name": "good-cards", "segment": "prime", "when": {"rating_in": ["A", "B"], "product_in": ["card"]}}],
    "default": {"segment": "standard", "why": "no rule matched"}}


async def put(api: ServiceApi, tenant: Tenant, document: Any, reason: str | None = "board decision 7",
              headers: dict[str, str] | None = None) -> Any:
    body = {"document": document} | ({"reason": reason} if reason is not None else {})
    return await api.client.put(PATH, json=body, headers=headers or tenant.headers)


async def stored_policies(api: ServiceApi, tenant: Tenant) -> list[Any]:
    return await api.all(select(SegmentationPolicyRow).where(SegmentationPolicyRow.tenant == tenant.id))


async def audited(api: ServiceApi, tenant: Tenant) -> list[Any]:
    return await api.all(select(AuditEntry).where(AuditEntry.tenant == tenant.id).order_by(AuditEntry.id))


async def issue(infra: Any, tenant: str, roles: set[str], principal: str) -> dict[str, str]:
    """An issued API key of ``tenant`` with these roles, as request headers."""
    engine = create_async_engine(asyncpg_url(infra.database_url), poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            key, _ = await store.issue(conn, tenant=tenant, principal=principal, roles=frozenset(roles),
                                       created_by="test", now=datetime.now(UTC), expires_at=None)
    finally:
        await engine.dispose()
    return {"Authorization": f"Bearer {key.text}"}


async def seed(api: ServiceApi, tenant: Tenant, *, dpd: int, rating: str, product: str = "cash-loan",
               at: datetime | None = None, account_id: str | None = None) -> AccountOverdueV1:
    """An overdue account of the tenant, recorded by the use case the consumer calls."""
    account = account_id or unique("ACC")
    payload = AccountOverdueV1(
        tenant=tenant.id, account_id=account, customer_id=f"C-{account}", product=product, currency="CNY",
        outstanding_minor=900_000, overdue_minor=120_000, days_past_due=dpd,
        due_date=date.today() - timedelta(days=dpd), credit_rating=rating,
        contact={"name": CIPHER.seal("李四", context=tenant.id), "time_zone": "Asia/Shanghai"})
    event = build_event(topics.ACCOUNT_OVERDUE, payload, tenant=tenant.id, customer_id=payload.customer_id,
                        source="urn:test")
    if at is not None:
        event = event.model_copy(update={"time": at})
    async with api.runtime.units() as uow:
        await service.record_overdue(uow, overdue=[(payload, event)])
        await uow.commit()
    return payload


async def test_a_tenant_publishes_versions_reads_the_current_one_and_its_history(
        segmentation: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    before = (await segmentation.client.get(PATH, headers=tenant_a.headers)).json()
    assert (before["version"], before["label"], before["created_by"]) == (0, "seg-v1", None)
    assert before["document"] == copy.deepcopy(dict(BUILTIN_DOCUMENT))

    first = await put(segmentation, tenant_a, LATE_IS_HIGH_RISK)
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["version"], body["label"], body["reason"], body["created_by"]) == (
        1, "policy-v1", "board decision 7", f"static:{tenant_a.id}")
    assert body["document"] == LATE_IS_HIGH_RISK
    second = await put(segmentation, tenant_a, {"rules": [], "default": "standard"}, reason="everyone standard")
    assert second.status_code == 201, second.text
    assert second.json()["version"] == 2

    current = (await segmentation.client.get(PATH, headers=tenant_a.headers)).json()
    assert (current["version"], current["label"], current["document"]) == (
        2, "policy-v2", {"rules": [], "default": "standard"})
    history = (await segmentation.client.get(f"{PATH}/versions", headers=tenant_a.headers)).json()
    assert [(v["version"], v["reason"]) for v in history] == [(2, "everyone standard"), (1, "board decision 7")]
    limited = (await segmentation.client.get(f"{PATH}/versions", params={"limit": 1}, headers=tenant_a.headers))
    assert [v["version"] for v in limited.json()] == [2]
    # each publication audited, in segmentation's own audit log
    assert [(a.action, a.subject, a.reason, a.principal) for a in await audited(segmentation, tenant_a)] == [
        ("segmentation_policy.publish", "segmentation-policy:v1", "board decision 7", f"static:{tenant_a.id}"),
        ("segmentation_policy.publish", "segmentation-policy:v2", "everyone standard", f"static:{tenant_a.id}")]
    # another tenant sees none of it and still has the built-in policy
    other = (await segmentation.client.get(PATH, headers=tenant_b.headers)).json()
    assert (other["version"], other["label"]) == (0, "seg-v1")
    assert (await segmentation.client.get(f"{PATH}/versions", headers=tenant_b.headers)).json() == []
    assert await audited(segmentation, tenant_b) == []


@pytest.mark.parametrize(("document", "reasons"), [
    ({"rules": []}, ["default is required"]),
    ({"rules": [{"name": "a", "segment": "gold", "when": {"dpd_min": 40, "dpd_max": 30, "rating_in": ["F"]}}],
      "default": "standard", "colour": "red"},
     ["unknown field 'colour'", "unknown segment \"gold\"", "unknown rating 'F'",
      "dpd_min 40 is greater than dpd_max 30"]),
    ({"rules": [{"name": "all", "segment": "prime"}, {"name": "late", "segment": "high_risk", "when": {"dpd_min": 9}}],
      "default": "standard"}, ["rules[1] 'late' can never match"]),
    ({"rules": [{"name": "a", "segment": "prime", "when": {"overdue_min_minor": 100.5, "score_min": -1,
                                                           "payments_in_last_days": {"days": 30}}}],
      "default": "standard"},
     ["whole minor units", "score_min must not be negative", "needs a min or a max"]),
    ({"rules": [{"name": f"r{i}", "segment": "prime", "when": {"dpd_min": i}} for i in range(201)],
      "default": "standard"}, ["201 rules, over the limit of 200"]),
    ({"rules": [{"name": f"r{i}", "segment": "prime", "when": {"product_in": ["p" * 64] * 100}} for i in range(11)],
      "default": "standard"}, ["over the limit of 65536 bytes"]),
    ({"rules": [{"name": "x", "segment": "prime", "when": {"dpd_mx": 3}}], "default": "standard"},
     ["unknown condition 'dpd_mx'"]),
])
async def test_a_bad_document_is_refused_with_every_reason_and_nothing_is_stored(
        segmentation: ServiceApi, tenant_a: Tenant, document: dict[str, Any], reasons: list[str]) -> None:
    problem = assert_problem(await put(segmentation, tenant_a, document), 422)
    assert problem["title"] == "Segmentation policy refused"
    listed = [e["msg"] for e in problem["errors"]]
    for says in reasons:
        assert says in problem["detail"], (says, problem["detail"])
        assert any(says in msg for msg in listed), (says, listed)
    assert len(listed) == len(reasons), listed
    assert all(e["loc"] == ["body", "document"] for e in problem["errors"])
    assert await stored_policies(segmentation, tenant_a) == []
    assert await audited(segmentation, tenant_a) == []
    assert (await segmentation.client.get(PATH, headers=tenant_a.headers)).json()["version"] == 0


async def test_publishing_needs_a_reason_a_document_object_and_a_key(segmentation: ServiceApi,
                                                                     tenant_a: Tenant) -> None:
    assert_problem(await put(segmentation, tenant_a, LATE_IS_HIGH_RISK, reason=None), 422)
    assert_problem(await put(segmentation, tenant_a, LATE_IS_HIGH_RISK, reason=""), 422)
    assert_problem(await put(segmentation, tenant_a, ["not", "an", "object"]), 422)
    assert_problem(await segmentation.client.put(PATH, json={"document": LATE_IS_HIGH_RISK, "reason": "x"}), 401)
    assert_problem(await segmentation.client.get(PATH), 401)
    assert_problem(await segmentation.client.post(f"{PATH}/dry-run", json={"document": LATE_IS_HIGH_RISK}), 401)
    assert await stored_policies(segmentation, tenant_a) == []


async def test_only_a_strategist_publishes_or_tries_a_policy_anyone_of_the_tenant_reads(
        open_api: Any, infra: Any, tenant_a: Tenant) -> None:
    api = await open_api("segmentation", api_key_cache_ttl_s=0)
    partner = await issue(infra, tenant_a.id, {"partner", "compliance", "supervisor"}, unique("partner"))
    strategist = await issue(infra, tenant_a.id, {"strategist"}, "strategist-wu")
    problem = assert_problem(await put(api, tenant_a, LATE_IS_HIGH_RISK, headers=partner), 403)
    assert "strategist" in problem["detail"]
    assert_problem(await api.client.post(f"{PATH}/dry-run", json={"document": LATE_IS_HIGH_RISK}, headers=partner),
                   403)
    assert await stored_policies(api, tenant_a) == [] and await audited(api, tenant_a) == []
    assert (await api.client.get(PATH, headers=partner)).json()["version"] == 0

    published = await put(api, tenant_a, LATE_IS_HIGH_RISK, headers=strategist)
    assert published.status_code == 201, published.text
    assert published.json()["created_by"] == "strategist-wu"
    [entry] = await audited(api, tenant_a)
    assert (entry.principal, entry.key_id) == ("strategist-wu", strategist["Authorization"].split("_")[1])
    assert (await api.client.get(PATH, headers=partner)).json()["version"] == 1
    assert (await api.client.get(f"{PATH}/versions", headers=partner)).status_code == 200
    tried = await api.client.post(f"{PATH}/dry-run", json={"document": LATE_IS_HIGH_RISK}, headers=strategist)
    assert tried.status_code == 200, tried.text


async def test_a_dry_run_counts_the_moves_over_the_tenants_newest_accounts_and_stores_nothing(
        segmentation: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    now = datetime.now(UTC)
    # (dpd, rating, product): built-in seg-v1 segment -> LATE_IS_HIGH_RISK segment
    seeded = [
        await seed(segmentation, tenant_a, dpd=35, rating="A", at=now - timedelta(minutes=1)),  # standard -> high_risk
        await seed(segmentation, tenant_a, dpd=40, rating="C", at=now - timedelta(minutes=2)),  # standard -> high_risk
        await seed(segmentation, tenant_a, dpd=5, rating="B", at=now - timedelta(minutes=3)),   # prime -> standard
        await seed(segmentation, tenant_a, dpd=5, rating="A", product="card",
                   at=now - timedelta(minutes=4)),                                              # prime -> prime
        await seed(segmentation, tenant_a, dpd=95, rating="E", at=now - timedelta(minutes=5)),  # high_risk -> high_risk
        await seed(segmentation, tenant_a, dpd=3, rating="C", at=now - timedelta(minutes=6)),   # standard -> standard
    ]
    for _ in range(3):  # another tenant's accounts, all of which the document would move
        await seed(segmentation, tenant_b, dpd=31, rating="B", at=now)
    segments_before = {a.account_id: a.segment for a in await accounts_of(segmentation, tenant_a)}
    outbox_before = await segmentation.outbox(tenant_a)

    response = await segmentation.client.post(f"{PATH}/dry-run", json={"document": LATE_IS_HIGH_RISK},
                                              headers=tenant_a.headers)
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["current_version"], result["current_label"], result["proposed_label"]) == (0, "seg-v1", "policy-v1")
    assert (result["sampled"], result["changed"]) == (6, 3)
    assert result["moves"] == [
        {"from": "prime", "to": "prime", "accounts": 1}, {"from": "prime", "to": "standard", "accounts": 1},
        {"from": "standard", "to": "standard", "accounts": 1}, {"from": "standard", "to": "high_risk", "accounts": 2},
        {"from": "high_risk", "to": "high_risk", "accounts": 1}]
    examples = result["examples"]
    assert [e["account_id"] for e in examples] == [seeded[0].account_id, seeded[1].account_id, seeded[2].account_id]
    first = examples[0]
    assert (first["current"]["segment"], first["current"]["rule"]) == ("standard", None)
    assert first["current"]["reason"] == "seg-v1: default: rating A, DPD 35: neither prime nor high-risk"
    assert (first["proposed"]["segment"], first["proposed"]["rule"]) == ("high_risk", "late")
    assert first["proposed"]["reason"] == "policy-v1: rule late: rating A, DPD 35: a month late"

    # the newest first: a sample of two takes the two newest snapshots
    small = (await segmentation.client.post(f"{PATH}/dry-run", json={"document": LATE_IS_HIGH_RISK, "sample": 2},
                                            headers=tenant_a.headers)).json()
    assert (small["sampled"], small["changed"]) == (2, 2)
    assert [e["account_id"] for e in small["examples"]] == [seeded[0].account_id, seeded[1].account_id]

    # nothing stored, nothing announced
    assert {a.account_id: a.segment for a in await accounts_of(segmentation, tenant_a)} == segments_before
    assert await stored_policies(segmentation, tenant_a) == [] and await audited(segmentation, tenant_a) == []
    assert await segmentation.outbox(tenant_a) == outbox_before

    # against the current policy once one is published; the other tenant only ever sees its own accounts
    assert (await put(segmentation, tenant_a, LATE_IS_HIGH_RISK)).status_code == 201
    same = (await segmentation.client.post(f"{PATH}/dry-run", json={"document": LATE_IS_HIGH_RISK},
                                           headers=tenant_a.headers)).json()
    assert (same["current_version"], same["proposed_label"], same["changed"]) == (1, "policy-v2", 0)
    theirs = (await segmentation.client.post(f"{PATH}/dry-run", json={"document": LATE_IS_HIGH_RISK},
                                             headers=tenant_b.headers)).json()
    assert (theirs["current_version"], theirs["sampled"], theirs["changed"]) == (0, 3, 3)
    assert theirs["moves"] == [{"from": "standard", "to": "high_risk", "accounts": 3}]


async def test_a_dry_run_of_a_bad_document_or_sample_is_refused(segmentation: ServiceApi, tenant_a: Tenant) -> None:
    problem = assert_problem(await segmentation.client.post(
        f"{PATH}/dry-run", json={"document": {"rules": [{"name": "x", "segment": "gold"}]}}, headers=tenant_a.headers),
        422)
    assert "unknown segment" in problem["detail"] and "default is required" in problem["detail"]
    for sample in (0, 5001, "many"):
        assert_problem(await segmentation.client.post(
            f"{PATH}/dry-run", json={"document": LATE_IS_HIGH_RISK, "sample": sample}, headers=tenant_a.headers), 422)
    empty = await segmentation.client.post(f"{PATH}/dry-run", json={"document": LATE_IS_HIGH_RISK, "sample": 5000},
                                           headers=tenant_a.headers)
    assert empty.status_code == 200, empty.text
    assert (empty.json()["sampled"], empty.json()["moves"], empty.json()["examples"]) == (0, [], [])


async def test_accounts_are_classified_by_their_own_tenants_published_policy(
        segmentation: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    assert (await put(segmentation, tenant_a, LATE_IS_HIGH_RISK)).status_code == 201
    mine = await seed(segmentation, tenant_a, dpd=31, rating="B")
    theirs = await seed(segmentation, tenant_b, dpd=31, rating="B")
    [a] = await accounts_of(segmentation, tenant_a, mine.account_id)
    [b] = await accounts_of(segmentation, tenant_b, theirs.account_id)
    assert (a.segment, b.segment) == ("high_risk", "standard")  # seg-v1: B with DPD 31 is standard
    [history] = await segmentation.all(select(SegmentChange).where(SegmentChange.tenant == tenant_a.id))
    assert (history.policy_version, history.reason) == (1, "policy-v1: rule late: rating B, DPD 31: a month late")
    [announced] = [o for o in await segmentation.outbox(tenant_a) if o.topic == topics.ACCOUNT_SEGMENTED.name]
    assert announced.event.data["reason"] == history.reason and announced.event.data["segment"] == "high_risk"
    [theirs_history] = await segmentation.all(select(SegmentChange).where(SegmentChange.tenant == tenant_b.id))
    assert (theirs_history.policy_version, theirs_history.segment) == (0, "standard")


async def accounts_of(api: ServiceApi, tenant: Tenant, account_id: str | None = None) -> list[Any]:
    query = select(Account).where(Account.tenant == tenant.id)
    if account_id is not None:
        query = query.where(Account.account_id == account_id)
    return await api.all(query)

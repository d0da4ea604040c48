"""The scorecard registry over REST on the real database: registering (refusals name every reason and store
nothing; a version twice is 409), the strategist role, the audit log, promotion, the live scorecard (the shipped
default until one is promoted) and tenancy; an account scored by the promoted version."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from sqlalchemy import select

from services.segmentation.db.models import Account, ScorecardPromotion, ScorecardRow
from services.segmentation.domain.scorecard import load_default
from shared.audit import AuditEntry
from tests.api.support import ServiceApi, Tenant, assert_problem, unique
from tests.api.test_api_segmentation_policy import issue, seed

pytestmark = pytest.mark.integration
PATH = "/v1/scorecards"
DEFAULT = load_default()


def card(version: str, *, dpd_points: tuple[int, int] = (40, -40)) -> dict[str, Any]:
    """A small valid scorecard: days past due only (under 30: cures more often), with held-out metrics."""
    return {"format": "gentle-collections/scorecard", "version": version,
            "scaling": {"base_points": 600, "base_odds": 1, "pdo": 20}, "intercept_points": 600,
            "features": [{"name": "days_past_due", "kind": "numeric", "edges": [30],
                          "bins": [{"points": dpd_points[0]}, {"points": dpd_points[1]}],
                          "reason": {"code": "DPD", "text": "Many days past due"}}],
            "metrics": {"held_out": {"auc": 0.71, "ks": 0.33, "gini": 0.42,
                                     "calibration": [{"decile": 1, "predicted": 0.1, "observed": 0.12}]}}}


async def register(api: ServiceApi, document: Any, *, headers: dict[str, str], reason: str = "trained on 2025") -> Any:
    return await api.client.post(PATH, json={"document": document, "reason": reason}, headers=headers)


async def promote(api: ServiceApi, version: str, *, headers: dict[str, str], reason: str = "beats the default") -> Any:
    return await api.client.post(f"{PATH}/{version}/promote", json={"reason": reason}, headers=headers)


async def stored(api: ServiceApi, tenant: Tenant) -> tuple[list[Any], list[Any]]:
    return (await api.all(select(ScorecardRow).where(ScorecardRow.tenant == tenant.id)),
            await api.all(select(ScorecardPromotion).where(ScorecardPromotion.tenant == tenant.id)))


async def audited(api: ServiceApi, tenant: Tenant) -> list[Any]:
    return [(a.action, a.subject, a.reason) for a in await api.all(
        select(AuditEntry).where(AuditEntry.tenant == tenant.id).order_by(AuditEntry.id))]


async def test_register_list_read_promote_and_the_live_scorecard(
        segmentation: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    api, headers = segmentation, tenant_a.headers
    live = (await api.client.get(f"{PATH}/live", headers=headers)).json()
    assert (live["version"], live["source"], live["promoted_by"]) == ("sim-2025.1", "default", None)
    assert live["auc"] == DEFAULT.metrics["held_out"]["auc"]

    version = unique("v")
    created = await register(api, card(version), headers=headers)
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["version"], body["source"], body["live"], body["features"]) == (
        version, "registered", False, ["days_past_due"])
    assert (body["auc"], body["ks"], body["gini"], body["registered_by"], body["reason"]) == (
        0.71, 0.33, 0.42, f"static:{tenant_a.id}", "trained on 2025")
    assert body["calibration"] == [{"decile": 1, "predicted": 0.1, "observed": 0.12}]
    # registered is not live
    assert (await api.client.get(f"{PATH}/live", headers=headers)).json()["source"] == "default"
    read = (await api.client.get(f"{PATH}/{version}", headers=headers)).json()
    assert read["document"] == card(version) and read["live"] is False
    # the shipped default is readable under its version
    shipped = (await api.client.get(f"{PATH}/sim-2025.1", headers=headers)).json()
    assert (shipped["source"], shipped["live"], shipped["document"]["version"]) == ("default", True, "sim-2025.1")

    promoted = await promote(api, version, headers=headers)
    assert promoted.status_code == 200, promoted.text
    assert (promoted.json()["version"], promoted.json()["source"], promoted.json()["reason"]) == (
        version, "registered", "beats the default")
    live = (await api.client.get(f"{PATH}/live", headers=headers)).json()
    assert (live["version"], live["source"], live["promoted_by"]) == (version, "registered", f"static:{tenant_a.id}")
    listed = (await api.client.get(PATH, headers=headers)).json()
    assert listed["live"]["version"] == version
    assert [(s["version"], s["live"]) for s in listed["scorecards"]] == [(version, True)]

    # a second version, promoted: the newest promotion is live; promoting back is a rollback
    second = unique("v")
    assert (await register(api, card(second, dpd_points=(30, -30)), headers=headers)).status_code == 201
    assert (await promote(api, second, headers=headers)).status_code == 200
    assert (await api.client.get(f"{PATH}/live", headers=headers)).json()["version"] == second
    assert (await promote(api, version, headers=headers, reason="rollback")).status_code == 200
    assert (await api.client.get(f"{PATH}/live", headers=headers)).json()["version"] == version
    assert await audited(api, tenant_a) == [
        ("scorecard.register", f"scorecard:{version}", "trained on 2025"),
        ("scorecard.promote", f"scorecard:{version}", "beats the default"),
        ("scorecard.register", f"scorecard:{second}", "trained on 2025"),
        ("scorecard.promote", f"scorecard:{second}", "beats the default"),
        ("scorecard.promote", f"scorecard:{version}", "rollback")]

    # an account's next snapshot is scored by the live version
    account = await seed(api, tenant_a, dpd=10, rating="B")
    [row] = await api.all(select(Account).where(Account.tenant == tenant_a.id,
                                                Account.account_id == account.account_id))
    assert (row.scorecard_version, row.score_points) == (version, 640)
    shown = (await api.client.get(f"/v1/accounts/{account.account_id}", headers=headers)).json()
    assert shown["score"] == {"scorecard": version, "points": 640, "probability": "0.8000", "reasons": []}


async def test_a_version_registered_twice_is_a_conflict_and_stores_nothing_more(
        segmentation: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    version = unique("v")
    assert (await register(segmentation, card(version), headers=tenant_a.headers)).status_code == 201
    problem = assert_problem(await register(segmentation, card(version, dpd_points=(1, -1)),
                                            headers=tenant_a.headers), 409)
    assert version in problem["detail"]
    rows, _ = await stored(segmentation, tenant_a)
    assert [r.document for r in rows] == [card(version)]
    assert len(await audited(segmentation, tenant_a)) == 1
    # another tenant may register the same version: it is its own
    assert (await register(segmentation, card(version), headers=tenant_b.headers)).status_code == 201


def _broken(change: Any) -> dict[str, Any]:
    doc = card("broken")
    change(doc)
    return doc


@pytest.mark.parametrize(("document", "reasons"), [
    ({"format": "other"}, ["not a scorecard document"]),
    ([1, 2], ["must be a JSON object"]),
    (_broken(lambda d: (d.update(version="a b/c", intercept_points=1.5), d["scaling"].update(pdo=0),
                        d["features"][0].update(name="shoe_size", edges=[40, 30]))),
     ["version must be", "intercept_points: points must be integers", "base_odds and pdo must be positive",
      "'shoe_size': unknown feature", "strictly increasing edges"]),
    (_broken(lambda d: d["features"][0]["bins"][0].update(points=10**9)), ["beyond ±10000"]),
    (_broken(lambda d: d["features"][0].update(bins=["x", "y"])), ["every bin must be an object"]),
    (_broken(lambda d: d.update(version="live")), ["version 'live' is reserved"]),
    (_broken(lambda d: d.update(features="days_past_due")), ["features must be a non-empty list"]),
])
async def test_a_document_the_scorer_cannot_load_is_refused_with_every_reason_and_nothing_stored(
        segmentation: ServiceApi, tenant_a: Tenant, document: Any, reasons: list[str]) -> None:
    response = await segmentation.client.post(PATH, json={"document": document, "reason": "try"},
                                              headers=tenant_a.headers)
    if not isinstance(document, dict):  # not an object: the body's schema refuses it
        assert_problem(response, 422)
    else:
        problem = assert_problem(response, 422)
        assert problem["title"] == "Scorecard refused"
        for reason in reasons:
            assert reason in problem["detail"], (reason, problem["detail"])
        assert len(problem["errors"]) >= len(reasons)
        assert all(e["type"] == "scorecard_refused" for e in problem["errors"])
    assert await stored(segmentation, tenant_a) == ([], [])
    assert await audited(segmentation, tenant_a) == []


async def test_only_a_strategist_registers_or_promotes_anyone_of_the_tenant_reads(
        open_api: Any, infra: Any, tenant_a: Tenant) -> None:
    api = await open_api("segmentation", api_key_cache_ttl_s=0)
    partner = await issue(infra, tenant_a.id, {"partner", "compliance", "supervisor"}, unique("partner"))
    strategist = await issue(infra, tenant_a.id, {"strategist"}, "strategist-wu")
    version = unique("v")
    problem = assert_problem(await register(api, card(version), headers=partner), 403)
    assert "strategist" in problem["detail"]
    assert await stored(api, tenant_a) == ([], [])
    assert (await register(api, card(version), headers=strategist)).status_code == 201
    assert_problem(await promote(api, version, headers=partner), 403)
    assert (await api.client.get(f"{PATH}/live", headers=partner)).json()["source"] == "default"
    assert (await promote(api, version, headers=strategist)).status_code == 200
    live = (await api.client.get(f"{PATH}/live", headers=partner)).json()
    assert (live["version"], live["promoted_by"]) == (version, "strategist-wu")
    assert (await api.client.get(PATH, headers=partner)).status_code == 200
    assert (await api.client.get(f"{PATH}/{version}", headers=partner)).status_code == 200
    assert_problem(await api.client.get(PATH), 401)


async def test_a_tenant_sees_and_promotes_only_its_own(
        segmentation: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    version = unique("v")
    assert (await register(segmentation, card(version), headers=tenant_a.headers)).status_code == 201
    # B cannot read, promote or list A's version
    assert_problem(await segmentation.client.get(f"{PATH}/{version}", headers=tenant_b.headers), 404)
    problem = assert_problem(await promote(segmentation, version, headers=tenant_b.headers), 404)
    assert version in problem["detail"]
    assert (await segmentation.client.get(PATH, headers=tenant_b.headers)).json()["scorecards"] == []
    assert await stored(segmentation, tenant_b) == ([], [])
    # A promotes it: B still scores by the shipped default
    assert (await promote(segmentation, version, headers=tenant_a.headers)).status_code == 200
    assert (await segmentation.client.get(f"{PATH}/live", headers=tenant_b.headers)).json()["source"] == "default"
    assert_problem(await promote(segmentation, unique("v"), headers=tenant_a.headers), 404)
    _, promotions = await stored(segmentation, tenant_a)
    assert [p.version for p in promotions] == [version]
    b_account = await seed(segmentation, tenant_b, dpd=10, rating="B")
    [row] = await segmentation.all(select(Account).where(Account.tenant == tenant_b.id,
                                                         Account.account_id == b_account.account_id))
    assert row.scorecard_version == "sim-2025.1"


async def test_a_version_path_that_cannot_be_a_version_is_refused(segmentation: ServiceApi,
                                                                   tenant_a: Tenant) -> None:
    assert_problem(await segmentation.client.get(f"{PATH}/%20bad", headers=tenant_a.headers), 422)
    body = copy.deepcopy(card("x"))
    assert_problem(await segmentation.client.post(PATH, json={"document": body}, headers=tenant_a.headers), 422)

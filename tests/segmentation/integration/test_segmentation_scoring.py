"""Scoring on the real PostgreSQL, through the consumer's handlers: an overdue snapshot is scored by its tenant's
live scorecard (the newest promotion, else the shipped default) before it is classified; the score is stored on the
account and its segment-history row and announced on segmentation.account-segmented.v1; a policy's propensity
conditions read it; the same snapshots and payments in another order store the same score; and a batch reads the
segment history only when the live scorecard counts previous cures."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event

from services.segmentation import service
from services.segmentation.consumers import handlers
from services.segmentation.domain.scorecard import FORMAT, load_default
from shared.contracts.events import AccountSegmentedV1
from tests.helpers import committed, committed_reading_outbox
from tests.segmentation.integration.test_segmentation_policies import (
    T0,
    account,
    history,
    new_tenant,
    overdue,
    payment,
    publish,
)

pytestmark = pytest.mark.integration
DEFAULT = load_default()


def dpd_card(version: str, *, cures_points: int = 0) -> dict[str, Any]:
    """Days past due under 30: +40 points, else -40 (600 points is probability 0.5); optionally previous cures."""
    features: list[dict[str, Any]] = [
        {"name": "days_past_due", "kind": "numeric", "edges": [30], "bins": [{"points": 40}, {"points": -40}],
         "reason": {"code": "DPD", "text": "Many days past due"}}]
    if cures_points:
        features.append({"name": "previous_cures", "kind": "numeric", "edges": [1],
                         "bins": [{"points": 0}, {"points": cures_points}],
                         "reason": {"code": "CURES", "text": "Few earlier overdue spells paid off"}})
    return {"format": FORMAT, "version": version, "scaling": {"base_points": 600, "base_odds": 1, "pdo": 20},
            "intercept_points": 600, "features": features}


async def promoted(sessions: Any, tenant: str, document: dict[str, Any]) -> str:
    async with committed(sessions) as uow:
        await service.register_scorecard(uow.session, tenant=tenant, document=document, registered_by="test",
                                         reason="test")
        await service.promote_scorecard(uow.session, tenant=tenant, version=document["version"],
                                        promoted_by="test", reason="test")
    service.SCORECARDS.forget(tenant)
    return str(document["version"])


def score_columns(a: Any) -> tuple[Any, ...]:
    return a.scorecard_version, a.score_points, a.score_probability, a.score_reasons


async def test_a_snapshot_is_scored_by_the_live_scorecard_stored_and_announced(sessions: Any) -> None:
    tenant, other = new_tenant(), new_tenant()
    version = await promoted(sessions, tenant, dpd_card(f"v-{uuid.uuid4().hex[:6]}"))
    async with committed_reading_outbox(sessions) as (uow, written):
        await handlers.on_account_overdue(uow, [overdue(tenant, T0, dpd=40), overdue(other, T0, dpd=40)])
    announced = {e.tenant: e for e in (AccountSegmentedV1.model_validate(r.event.data) for r in written)}

    stored = await account(sessions, tenant)
    assert score_columns(stored) == (version, 560, Decimal("0.2000"),
                                     [{"code": "DPD", "text": "Many days past due"}])
    [row] = await history(sessions, tenant)
    assert score_columns(row) == score_columns(stored)
    score = announced[tenant].score
    assert score is not None
    assert (score.scorecard, score.points, score.probability, score.reasons) == (version, 560, Decimal("0.2000"),
                                                                                ["DPD"])
    # a tenant with none promoted: the shipped default, from the snapshot's features at its time
    expected = DEFAULT.score({"rating": "B", "days_past_due": 40, "overdue_ratio": 0.1, "overdue_minor": 1_000,
                              "product": "loan", "payments_last_30d": 0, "payments_last_90d": 0})
    theirs = await account(sessions, other)
    assert (theirs.scorecard_version, theirs.score_points) == ("sim-2025.1", expected.points)
    assert theirs.score_reasons == [{"code": r.code, "text": r.text} for r in expected.reasons]
    assert announced[other].score is not None and announced[other].score.reasons == [r.code for r in
                                                                                      expected.reasons]


async def test_a_policy_rule_on_propensity_reads_the_score_of_the_same_snapshot(sessions: Any) -> None:
    tenant = new_tenant()
    await promoted(sessions, tenant, dpd_card(f"v-{uuid.uuid4().hex[:6]}"))
    await publish(sessions, tenant, {"name": "likely", "segment": "prime", "when": {"propensity_min": 0.75},
                                     "why": "likely to pay"},
                  {"name": "unlikely", "segment": "high_risk", "when": {"propensity_max": 0.25}})
    async with committed(sessions) as uow:
        await handlers.on_account_overdue(uow, [overdue(tenant, T0, dpd=10, rating="E")])
    [first] = await history(sessions, tenant)
    assert first.segment == "prime"  # rating E alone would be high-risk under seg-v1
    assert first.reason == "policy-v1: rule likely: rating E, DPD 10, propensity 0.8: likely to pay"
    async with committed(sessions) as uow:
        await handlers.on_account_overdue(uow, [overdue(tenant, T0 + timedelta(days=30), dpd=40, rating="A")])
    second = (await history(sessions, tenant))[1]
    assert (second.segment, second.score_probability) == ("high_risk", Decimal("0.2000"))
    assert second.reason == "policy-v1: rule unlikely: rating A, DPD 40, propensity 0.2"


async def test_the_same_snapshots_and_payments_in_another_order_store_the_same_score(sessions: Any) -> None:
    """By the shipped default (it counts payments in the last 30 and 90 days): in event-time order, and with the
    newest snapshot first and the payments booked before it arriving after it (they re-score it)."""
    first, second = new_tenant(), new_tenant()
    s1, s2 = T0, T0 + timedelta(days=20)

    def events(tenant: str) -> dict[str, Any]:
        return {"s1": overdue(tenant, s1, dpd=5), "s2": overdue(tenant, s2, dpd=25, overdue_minor=2_000),
                "p0": payment(tenant, 100, s1 - timedelta(days=40)), "p1": payment(tenant, 300, s1 + timedelta(days=3)),
                "p2": payment(tenant, 200, s2), "late": payment(tenant, 50, s2 + timedelta(hours=1))}

    async def apply(tenant: str, order: list[str]) -> Any:
        e = events(tenant)
        for name in order:
            async with committed(sessions) as uow:
                if name.startswith("s"):
                    await handlers.on_account_overdue(uow, [e[name]])
                else:
                    await handlers.on_payment_received(uow, [e[name]])
        return await account(sessions, tenant)

    in_order = await apply(first, ["p0", "s1", "p1", "p2", "s2", "late"])
    shuffled = await apply(second, ["late", "s2", "p2", "s1", "p1", "p0"])
    assert score_columns(in_order) == score_columns(shuffled)
    # the newest snapshot's score, with p0 (in 90 days), p1 (in 30) and p2 (at its instant) counted, not `late`
    expected = DEFAULT.score({"rating": "B", "days_past_due": 25, "overdue_ratio": 0.2, "overdue_minor": 2_000,
                              "product": "loan", "payments_last_30d": 2, "payments_last_90d": 3})
    assert (in_order.score_points, in_order.score_probability) == (
        expected.points, Decimal(expected.probability).quantize(Decimal("0.0001")))
    without = DEFAULT.score({"rating": "B", "days_past_due": 25, "overdue_ratio": 0.2, "overdue_minor": 2_000,
                             "product": "loan", "payments_last_30d": 0, "payments_last_90d": 0})
    assert without.points != expected.points  # so the payments arriving late had to be counted


@contextmanager
def statements(uow: Any) -> Iterator[list[str]]:
    seen: list[str] = []
    engine = uow.session.bind.sync_engine

    def listen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listen)


async def test_a_batch_reads_the_segment_history_only_for_a_scorecard_counting_previous_cures(sessions: Any) -> None:
    plain, cures = new_tenant(), new_tenant()
    await promoted(sessions, cures, dpd_card(f"v-{uuid.uuid4().hex[:6]}", cures_points=15))
    for tenant in (plain, cures):  # warm the caches: the scorecard and the policy are read once per 5 s
        async with committed(sessions) as uow:
            await handlers.on_account_overdue(uow, [overdue(tenant, T0 - timedelta(days=60), dpd=5)])
    async with committed(sessions) as uow:  # cured: paid in full after the first snapshot
        await handlers.on_payment_received(uow, [payment(cures, 1_000, T0 - timedelta(days=50))])

    reads: dict[str, list[str]] = {}
    for tenant in (plain, cures):
        async with committed(sessions) as uow:
            with statements(uow) as seen:
                await handlers.on_account_overdue(uow, [overdue(tenant, T0, dpd=10)])
            reads[tenant] = [s for s in seen if "segment_history" in s and s.lstrip().upper().startswith("SELECT")]
    assert reads[plain] == []
    assert len(reads[cures]) == 1
    assert (await account(sessions, cures)).score_points == 600 + 40 + 15  # one previous cure
    assert (await account(sessions, plain)).scorecard_version == "sim-2025.1"

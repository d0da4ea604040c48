"""The scheduler reaches the same end state whatever the order of one account's events (docs/events.md,
"Keys and ordering"): overdue snapshots, payments, plan events and contact outcomes, with duplicates and
late arrivals by event time, delivered one by one or in batches, in any interleaving, through the real
use cases on the real PostgreSQL, end where the sorted sequence ends.

The end state compared: the treatment (status, amounts, snapshot) and what became of the contact its
snapshot calls for. Older steps may differ between two orders (a contact already requested cannot be
unrequested); no contact is left open on a treatment that is not active, in either order.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from services.scheduler import service
from services.scheduler.db.models import StepOutcome, Treatment, TreatmentStep
from services.scheduler.domain.states import StepStatus, outcome_event
from services.scheduler.domain.strategies.builtin import BUILTIN
from services.scheduler.domain.strategies.interpreter import Account, step_for
from services.scheduler.domain.timeline import contact_id_for
from services.scheduler.settings import Settings
from shared.contracts import topics
from shared.contracts.events import (
    AccountSegmentedV1,
    ContactOutcomeV1,
    PaymentReceivedV1,
    PlanEventV1,
    Segment,
)
from shared.crypto import PiiCipher
from shared.db import create_engine, session_factory
from shared.messaging import build_event
from shared.settings import DEV_PII_KEYS
from tests.helpers import committed

pytestmark = pytest.mark.integration
CIPHER = PiiCipher(DEV_PII_KEYS, "dev1")
T0 = datetime(2026, 3, 1, 8, tzinfo=UTC)
DUE = date(2026, 2, 20)


@pytest.fixture(scope="module")
async def sessions(infra) -> AsyncIterator:  # type: ignore[no-untyped-def, type-arg]
    engine = create_engine(Settings(database_url=infra.database_url))
    yield session_factory(engine)
    await engine.dispose()


# --- facts, independent of the tenant they are materialised for ----------------------------------------

@dataclass(frozen=True)
class Snapshot:
    dpd: int
    new_cycle: bool
    overdue: int


@dataclass(frozen=True)
class Payment:
    n: int
    amount: int


@dataclass(frozen=True)
class Plan:
    n: int
    kind: str


@dataclass(frozen=True)
class Outcome:
    of: Snapshot  # the contact that snapshot's step makes
    outcome: str


Fact = Snapshot | Payment | Plan | Outcome

snapshots = st.builds(Snapshot, dpd=st.sampled_from([0, 3, 9, 20]), new_cycle=st.booleans(),
                      overdue=st.integers(100, 1_000))
payments = st.builds(Payment, n=st.integers(1, 3), amount=st.integers(50, 900))
plans = st.builds(Plan, n=st.integers(1, 2), kind=st.sampled_from(["agreed", "agreed", "completed", "cancelled",
                                                                   "broken"]))


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Fact], list[int], list[int]]:
    """A chronological history of one account (the n-th fact happens at T0 + n minutes), one delivery
    order of it with duplicates, and how that delivery is cut into batches."""
    facts: list[Fact] = [draw(snapshots)]
    facts += draw(st.lists(st.one_of(snapshots, payments, plans), max_size=7))
    taken = [f for f in facts if isinstance(f, Snapshot)]
    facts += [Outcome(draw(st.sampled_from(taken)), draw(st.sampled_from(["sent", "delivered", "failed",
                                                                              "no_answer", "right_party_contact"])))
              for _ in range(draw(st.integers(0, 2)))]
    facts = draw(st.permutations(facts))  # the chronology itself is random too
    # one payment id is one payment: keep the first of each id
    seen: set[int] = set()
    chronology = [f for f in facts
                  if not isinstance(f, Payment) or not (f.n in seen or seen.add(f.n))]  # type: ignore[func-returns-value]
    indices = list(range(len(chronology)))
    delivered = draw(st.permutations(indices + draw(st.lists(st.sampled_from(indices), max_size=3))))
    cuts = draw(st.lists(st.integers(1, 3), min_size=len(delivered), max_size=len(delivered)))
    return chronology, delivered, cuts


def _contact(tenant: str) -> dict[str, Any]:
    return {"name": CIPHER.seal("n", context=tenant), "phone": CIPHER.seal("+8613900000001", context=tenant),
            "time_zone": "Asia/Shanghai"}


def _due(s: Snapshot) -> date:
    return DUE + timedelta(days=30) if s.new_cycle else DUE


def _contact_id(tenant: str, s: Snapshot) -> str | None:
    account = Account(segment=Segment.HIGH_RISK.value, days_past_due=s.dpd, due_date=_due(s), overdue_minor=1,
                      time_zone="Asia/Shanghai", has_phone=True, has_email=False, has_address=False)
    step = step_for(BUILTIN, account, now=datetime.now(UTC))
    return None if step is None else contact_id_for(tenant=tenant, account_id="A1", step=step.step, due_date=_due(s))


def _materialise(tenant: str, fact: Fact, at: datetime) -> Any:
    common = {"tenant": tenant, "account_id": "A1", "customer_id": "C1"}
    if isinstance(fact, Snapshot):
        return AccountSegmentedV1(**common, segment=Segment.HIGH_RISK, dpd_bucket="x", days_past_due=fact.dpd,
                                  due_date=_due(fact), currency="CNY", overdue_minor=fact.overdue,
                                  outstanding_minor=fact.overdue, reason="seg", contact=_contact(tenant), as_of=at)
    if isinstance(fact, Payment):
        return PaymentReceivedV1(**common, payment_id=f"PAY-{fact.n}", amount_minor=fact.amount, currency="CNY",
                                 paid_at=at)
    if isinstance(fact, Plan):
        return PlanEventV1(**common, plan_id=f"P-{fact.n}", kind=fact.kind, currency="CNY", total_minor=1_000,
                           instalments=[], occurred_at=at)
    contact_id = _contact_id(tenant, fact.of) or "no-step"
    return ContactOutcomeV1(**common, contact_id=contact_id, channel="sms", outcome=fact.outcome, occurred_at=at)


async def _deliver(sessions: Any, batch: Sequence[Any]) -> None:
    """One consumer batch: one unit of work, consecutive payloads of one topic handed over together."""
    async with committed(sessions) as uow:
        i = 0
        while i < len(batch):
            j = i
            while j < len(batch) and type(batch[j]) is type(batch[i]):
                j += 1
            group = list(batch[i:j])
            if isinstance(group[0], AccountSegmentedV1):
                await service.record_segmented(uow, segmented=[(p, build_event(
                    topics.ACCOUNT_SEGMENTED, p, tenant=p.tenant, customer_id="C1", source="urn:test")) for p in group])
            elif isinstance(group[0], PaymentReceivedV1):
                await service.apply_payments(uow, payments=group)
            elif isinstance(group[0], PlanEventV1):
                await service.apply_plan_events(uow, plan_events=group)
            else:
                await service.record_outcomes(uow, outcomes=group)
            i = j


async def _end_state(sessions: Any, tenant: str, chronology: list[Fact]) -> dict[str, Any]:
    async with sessions() as session:
        t = (await session.execute(select(Treatment).where(Treatment.tenant == tenant))).scalars().one()
        steps = {s.contact_id: s for s in (await session.execute(
            select(TreatmentStep).where(TreatmentStep.tenant == tenant))).scalars()}
        outcomes = {o.contact_id: o.outcome for o in (await session.execute(
            select(StepOutcome).where(StepOutcome.tenant == tenant))).scalars()}
    live = {cid for cid, s in steps.items() if s.status in (StepStatus.PENDING, StepStatus.REQUESTED)}
    current = next(_contact_id(tenant, s) for s in chronology if isinstance(s, Snapshot)
                   and (_due(s), s.dpd) == (t.due_date, t.days_past_due))
    if current is None:
        contact = "no step"
    elif current in steps and steps[current].outcome is not None:
        contact = outcome_event(steps[current].outcome).value  # the contact was made: what became of it
        assert steps[current].status == {"succeeded": "done", "failed": "failed"}[contact]
    elif current in outcomes and current not in steps:
        contact = outcome_event(outcomes[current]).value  # reported before the step existed here
    else:
        contact = "open" if current in live else "none"
    if t.status != "active":
        assert not live, f"contacts left open on a {t.status} treatment"
    elif current is not None:
        assert contact != "none", "an active treatment without its contact"
    return {"status": t.status, "overdue": t.overdue_minor, "reported": t.reported_overdue_minor,
            "as_of": t.as_of, "due_date": t.due_date, "dpd": t.days_past_due, "reason": t.status_reason,
            "contact": contact}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(histories())
async def test_any_order_of_one_accounts_events_ends_where_the_sorted_sequence_ends(
        sessions, history: tuple[list[Fact], list[int], list[int]]) -> None:  # type: ignore[no-untyped-def]
    chronology, delivered, cuts = history
    sorted_tenant, shuffled_tenant = (f"t-{uuid.uuid4().hex[:10]}" for _ in range(2))
    for fact_index in range(len(chronology)):
        at = T0 + timedelta(minutes=fact_index)
        await _deliver(sessions, [_materialise(sorted_tenant, chronology[fact_index], at)])
    shuffled = [_materialise(shuffled_tenant, chronology[i], T0 + timedelta(minutes=i)) for i in delivered]
    start = 0
    for size in cuts:
        if start >= len(shuffled):
            break
        await _deliver(sessions, shuffled[start:start + size])
        start += size

    assert await _end_state(sessions, shuffled_tenant, chronology) == await _end_state(
        sessions, sorted_tenant, chronology)


async def test_a_payment_before_its_overdue_notice_stops_the_treatment_it_clears(sessions) -> None:  # type: ignore[no-untyped-def]
    """The issue's case: an overdue notice immediately followed by the payment that clears it, the payment
    reaching the scheduler first."""
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    notice = _materialise(tenant, Snapshot(dpd=3, new_cycle=False, overdue=1_000), T0)
    payment = _materialise(tenant, Payment(n=1, amount=1_000), T0 + timedelta(seconds=1))
    plan = _materialise(tenant, Plan(n=1, kind="agreed"), T0 + timedelta(seconds=2))
    for payload in (payment, plan, notice):
        await _deliver(sessions, [payload])
    state = await _end_state(sessions, tenant, [Snapshot(dpd=3, new_cycle=False, overdue=1_000)])
    assert (state["status"], state["overdue"], state["contact"]) == ("stopped", 0, "none")


async def test_completing_a_plan_that_left_arrears_keeps_the_treatment_active(sessions) -> None:  # type: ignore[no-untyped-def]
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    snapshot = Snapshot(dpd=9, new_cycle=False, overdue=1_000)
    history = [snapshot, Plan(n=1, kind="agreed"), Payment(n=1, amount=400), Plan(n=1, kind="completed")]
    for i, fact in enumerate(history):
        await _deliver(sessions, [_materialise(tenant, fact, T0 + timedelta(minutes=i))])
    state = await _end_state(sessions, tenant, history)
    assert (state["status"], state["overdue"], state["contact"]) == ("active", 600, "open")

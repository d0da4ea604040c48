"""Promises to pay (plans.promise-event.v1) hold their account on the real PostgreSQL: an open promise pauses
automated contact until its deadline (PROMISE, HOUSE-HOLDS), its end lifts the hold; one hold per promise whatever
order its events arrive in, however often, one by one or in one batch."""

from __future__ import annotations

import base64
import itertools
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy import select

from services.compliance.consumers import handlers
from services.compliance.db.models import HoldRow
from services.compliance.domain.rules import engine
from services.compliance.domain.rules.base import HoldKind
from services.compliance.service import context as ctx
from services.compliance.service import plans_facts
from shared.contracts import topics
from shared.contracts.events import Channel, ContactRequestV1, PromiseEventV1
from shared.crypto import PiiCipher
from shared.identity import IdentityKeys
from shared.kafka.consumer import Delivery
from shared.messaging import build_event
from shared.settings import DEV_IDENTITY_KEY, DEV_PII_KEYS
from tests.helpers import committed_reading_outbox

pytestmark = pytest.mark.integration
CIPHER = PiiCipher(DEV_PII_KEYS, "dev1")
KEYS = ctx.ContactKeys(CIPHER, IdentityKeys(base64.b64decode(DEV_IDENTITY_KEY)))
MADE = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
DUE_ON = date(2026, 12, 4)
DEADLINE = datetime(2026, 12, 5, 16, 0, tzinfo=UTC)  # the end of 5 December (one day's grace) in Shanghai
DAYTIME = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)   # a Wednesday, 10:00 in Shanghai, the promise open


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def promise(tenant: str, status: str, *, promise_id: str = "PRM-1", at: datetime | None = None,
            account: str = "A1") -> PromiseEventV1:
    return PromiseEventV1(
        tenant=tenant, promise_id=promise_id, account_id=account, customer_id="C1", status=status,  # type: ignore[arg-type]
        source="portal", currency="CNY", amount_minor=50_000, paid_minor=0 if status != "kept" else 50_000,
        due_on=DUE_ON, deadline=DEADLINE, made_at=MADE,
        occurred_at=at or (MADE if status == "open" else DEADLINE))


def delivery(p: PromiseEventV1) -> Delivery:
    event = build_event(topics.PROMISE_EVENT, p, tenant=p.tenant, customer_id=p.customer_id, source="urn:test")
    return Delivery(event, p, ConsumerRecord(topics.PROMISE_EVENT.name, 0, 0, 0, 0, b"", event.to_bytes(), None,
                                             0, 0, []))


async def consume(sessions: Any, *events: PromiseEventV1) -> list[tuple[str, str, datetime]]:
    """Through compliance's handler, committed; the holds it announced (action, hold id, occurred_at)."""
    async with committed_reading_outbox(sessions) as (uow, written):
        await handlers.on_promise_event(uow, [delivery(e) for e in events])
    return [(w.event.data["action"], w.event.data["hold_id"], w.event.data["occurred_at"]) for w in written]


async def holds(sessions: Any, tenant: str) -> list[Any]:
    async with sessions() as session:
        return list((await session.execute(select(HoldRow).where(HoldRow.tenant == tenant))).scalars().all())  # type: ignore[arg-type]


def contact_request(tenant: str, *, account: str = "A1") -> ContactRequestV1:
    return ContactRequestV1(
        tenant=tenant, contact_id=f"c-{uuid.uuid4().hex}", attempt=1, account_id=account, customer_id="C1",
        channel=Channel.SMS, treatment_step="d5", segment="standard", days_past_due=5,
        destination=CIPHER.seal("+8613900000001", context=tenant), time_zone="Asia/Shanghai", locale="zh-CN",
        template_id="reminder", currency="CNY", overdue_minor=1_000, due_date=date(2026, 11, 25),
        requested_at=DAYTIME)


async def test_an_open_promise_pauses_automated_contact_until_its_deadline(sessions: Any, tenant: str) -> None:
    announced = await consume(sessions, promise(tenant, "open"))
    [hold] = await holds(sessions, tenant)
    assert hold.id == plans_facts.stable_id("hold", tenant, "promise", "PRM-1")
    assert (hold.kind, hold.account_id, hold.starts_at, hold.ends_at, hold.lifted_at) == (
        "promise", "A1", MADE, DEADLINE, None)
    assert [(a, h) for a, h, _ in announced] == [("placed", hold.id)]

    async with sessions() as session:
        held, other_account = await ctx.build_contexts(
            session, [contact_request(tenant), contact_request(tenant, account="A2")], keys=KEYS, now=DAYTIME)
    assert [(h.kind, h.ends_at) for h in held.holds] == [(HoldKind.PROMISE, DEADLINE)]
    assert other_account.holds == ()
    decision = engine.decide(held, DAYTIME)
    [verdict] = [r for r in decision.evaluated if r.rule_id == "HOUSE-HOLDS"]
    assert (verdict.verdict, verdict.retry_at) == ("defer", DEADLINE)
    assert decision.outcome == "deferred" and decision.retry_at is not None and decision.retry_at >= DEADLINE
    assert engine.decide(other_account, DAYTIME).outcome == "approved"


@pytest.mark.parametrize("end", ["kept", "partial", "broken", "cancelled"])
async def test_a_promise_ends_the_same_in_every_order_with_one_hold(sessions: Any, tenant: str, end: str) -> None:
    ended_at = MADE + timedelta(days=2)
    facts = [promise(tenant, "open"), promise(tenant, end, at=ended_at), promise(tenant, "open")]
    ends = set()
    for n, order in enumerate(itertools.permutations(range(3))):
        for one_by_one in (True, False):
            promise_id = f"PRM-{n}-{one_by_one}"
            events = [facts[i].model_copy(update={"promise_id": promise_id}) for i in order]
            announced = []
            if one_by_one:
                for e in events:
                    announced += await consume(sessions, e)
            else:
                announced += await consume(sessions, *events)
            # placed and lifted at most once each; never left announced as placed
            assert [a for a, _, _ in announced] in (["placed", "lifted"], []), (order, one_by_one, announced)
    for hold in await holds(sessions, tenant):
        ends.add((hold.kind, hold.starts_at, hold.ends_at, hold.lifted_at, hold.source_state, hold.lift_reason))
    assert ends == {("promise", MADE, DEADLINE, ended_at, end, f"promise {end}")}
    assert len(await holds(sessions, tenant)) == 12  # one per promise

    async with sessions() as session:
        [context] = await ctx.build_contexts(session, [contact_request(tenant)], keys=KEYS,
                                             now=DAYTIME + timedelta(days=1))
    assert [h for h in context.holds if h.active_at(DAYTIME + timedelta(days=1))] == []


async def test_an_end_heard_of_first_leaves_no_open_hold_and_a_late_open_changes_nothing(sessions: Any,
                                                                                        tenant: str) -> None:
    assert await consume(sessions, promise(tenant, "broken")) == []
    assert await consume(sessions, promise(tenant, "open"), promise(tenant, "open")) == []
    [hold] = await holds(sessions, tenant)
    assert (hold.source_state, hold.lifted_at, hold.lift_reason) == ("broken", DEADLINE, "promise broken")
    # a repeated open of another promise places one hold, announced once
    announced = await consume(sessions, promise(tenant, "open", promise_id="PRM-2"))
    announced += await consume(sessions, promise(tenant, "open", promise_id="PRM-2"))
    assert [a for a, _, _ in announced] == ["placed"]
    assert len(await holds(sessions, tenant)) == 2


async def test_promises_of_two_tenants_with_one_id_hold_apart(sessions: Any, tenant: str) -> None:
    other = f"t-{uuid.uuid4().hex[:8]}"
    await consume(sessions, promise(tenant, "open"), promise(other, "open"))
    await consume(sessions, promise(other, "cancelled"))
    [mine], [theirs] = await holds(sessions, tenant), await holds(sessions, other)
    assert mine.id != theirs.id
    assert (mine.lifted_at, theirs.source_state) == (None, "cancelled")


async def test_a_promise_id_reused_for_another_account_moves_or_lifts_nothing(sessions: Any, tenant: str) -> None:
    await consume(sessions, promise(tenant, "open"))
    assert await consume(sessions, promise(tenant, "broken", account="A2")) == []
    [hold] = await holds(sessions, tenant)
    assert (hold.account_id, hold.lifted_at, hold.source_state) == ("A1", None, "open")

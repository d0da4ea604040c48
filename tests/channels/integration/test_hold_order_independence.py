"""A hold and the approval of a contact it stops travel on two topics (compliance.hold-changed.v1 and
compliance.contact-approved.v1), so channels may read either first, read one twice, or read a lift before
both. Whatever the order, the end state is the same: the contact is revoked (naming the hold), announced once,
and nothing reaches the provider. Real PostgreSQL, the real dispatcher and the project's SMS sandbox (the
``rig`` of test_dispatcher.py); each case works on its own tenant."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from itertools import permutations
from typing import Any

import pytest
from sqlalchemy import select

from services.channels import service
from services.channels.db.models import KnownHold
from shared.contracts.events import Channel, ContactApprovedV1, HoldChangedV1
from tests.channels.integration import test_dispatcher
from tests.channels.integration.test_dispatcher import Rig
from tests.helpers import committed, statements_on

pytestmark = pytest.mark.integration
rig = test_dispatcher.rig  # the fixture: a tenant of its own, the SMS sandbox, the SMTP sink, the dispatcher

NOW = datetime.now(UTC)
APPROVED_AT = NOW - timedelta(minutes=10)
PLACED_AT = NOW - timedelta(minutes=5)
LIFTED_AT = NOW - timedelta(minutes=1)


def hold_event(rig: Rig, approval: ContactApprovedV1, action: str, *, hold_id: str = "H-1", at: datetime | None = None,
               starts_at: datetime = PLACED_AT, ends_at: datetime | None = None, tenant: str | None = None,
               account_id: str | None = "same", customer_id: str | None = None) -> HoldChangedV1:
    r = approval.request
    return HoldChangedV1(
        tenant=tenant or rig.tenant, hold_id=hold_id, customer_id=customer_id or r.customer_id,
        account_id=r.account_id if account_id == "same" else account_id, kind="complaint",
        action=action, reason="complaint CMP-9 filed" if action == "placed" else "complaint answered",  # type: ignore[arg-type]
        starts_at=starts_at, ends_at=ends_at,
        occurred_at=at or (PLACED_AT if action == "placed" else LIFTED_AT))


async def deliver(rig: Rig, what: ContactApprovedV1 | HoldChangedV1, approved_at: datetime = APPROVED_AT) -> None:
    """One consumer batch of one event, committed."""
    async with committed(rig.runtime.sessions) as uow:
        if isinstance(what, ContactApprovedV1):
            await service.record_approved(uow, approved=[what], approved_at=[approved_at])
        else:
            await service.revoke_for_holds(uow, holds=[what])


async def end_state(rig: Rig, contact_id: str) -> tuple[Any, ...]:
    """Status, detail and tries of the attempt, the outcomes announced for it, what the provider got."""
    await rig.drain()
    row = (await rig.attempts())[contact_id]
    told = [(o.outcome, o.detail) for o in (await rig.outcomes()).get(contact_id, [])]
    return row.status, row.detail, row.tries, told, len(await rig.sms(contact_id))


def orders(*events: str) -> list[tuple[str, ...]]:
    return sorted(set(permutations(events)))


CASES = [*orders("approval", "placed"), *orders("approval", "placed", "placed"),
         *orders("approval", "placed", "lifted"), *orders("approval", "placed", "placed", "lifted")]


@pytest.mark.parametrize("order", CASES, ids=["-".join(c) for c in CASES])
async def test_a_hold_placed_after_the_approval_revokes_it_whatever_the_order(rig: Rig, order: tuple[str, ...]) -> None:
    approval = rig.approval(Channel.SMS, 1, "+8613812345678")
    contact_id = approval.request.contact_id
    events = {"approval": approval, "placed": hold_event(rig, approval, "placed"),
              "lifted": hold_event(rig, approval, "lifted")}
    for name in order:
        await deliver(rig, events[name])

    detail = "revoked: complaint hold H-1"
    assert await end_state(rig, contact_id) == ("revoked", detail, 0, [("revoked", detail)], 0)
    # a repeated approval (the scheduler asked again) announces the settled outcome again, never sends
    await deliver(rig, approval)
    assert (await end_state(rig, contact_id))[-1] == 0


@pytest.mark.parametrize("hold_first", [True, False], ids=["hold-first", "approval-first"])
async def test_a_customer_wide_hold_revokes_every_account_of_the_customer(rig: Rig, hold_first: bool) -> None:
    approval = rig.approval(Channel.EMAIL, 2, "kunde@example.com")
    events = [hold_event(rig, approval, "placed", account_id=None), approval]
    for what in events if hold_first else events[::-1]:
        await deliver(rig, what)
    status, detail, *_ = await end_state(rig, approval.request.contact_id)
    assert (status, detail) == ("revoked", "revoked: complaint hold H-1")
    assert not [m for m in rig.mails() if m["X-Contact-Id"] == approval.request.contact_id]


def unrelated_holds(rig: Rig, approval: ContactApprovedV1) -> dict[str, list[HoldChangedV1]]:
    other_tenant = f"t-{uuid.uuid4().hex[:8]}"
    return {
        "another account": [hold_event(rig, approval, "placed", account_id="ACC-OTHER")],
        "another customer": [hold_event(rig, approval, "placed", account_id=None, customer_id="C-OTHER")],
        "another tenant": [hold_event(rig, approval, "placed", tenant=other_tenant),
                           hold_event(rig, approval, "placed", tenant=other_tenant, hold_id="H-2", account_id=None)],
        "lifted before the approval": [
            hold_event(rig, approval, "placed", at=APPROVED_AT - timedelta(hours=2),
                       starts_at=APPROVED_AT - timedelta(hours=2)),
            hold_event(rig, approval, "lifted", at=APPROVED_AT - timedelta(hours=1),
                       starts_at=APPROVED_AT - timedelta(hours=2))],
        "ended before the approval": [
            hold_event(rig, approval, "placed", at=APPROVED_AT - timedelta(hours=2),
                       starts_at=APPROVED_AT - timedelta(hours=2), ends_at=APPROVED_AT - timedelta(minutes=1))],
        "starting next week": [hold_event(rig, approval, "placed", starts_at=NOW + timedelta(days=7))],
        "lifted before it started": [
            hold_event(rig, approval, "placed", starts_at=PLACED_AT + timedelta(minutes=2)),
            hold_event(rig, approval, "lifted", starts_at=PLACED_AT + timedelta(minutes=2),
                       at=PLACED_AT + timedelta(minutes=1))],
    }


@pytest.mark.parametrize("hold_first", [True, False], ids=["hold-first", "approval-first"])
@pytest.mark.parametrize("case", ["another account", "another customer", "another tenant",
                                  "lifted before the approval", "ended before the approval", "starting next week",
                                  "lifted before it started"])
async def test_a_hold_that_does_not_cover_the_contact_stops_nothing(rig: Rig, case: str, hold_first: bool) -> None:
    approval = rig.approval(Channel.SMS, 3, "+8613812345678")
    holds = unrelated_holds(rig, approval)[case]
    for batch in ([holds, [approval]] if hold_first else [[approval], holds]):  # a hold's facts in one batch
        async with committed(rig.runtime.sessions) as uow:
            if batch[0] is approval:
                await service.record_approved(uow, approved=[approval], approved_at=[APPROVED_AT])
            else:
                await service.revoke_for_holds(uow, holds=holds)
    status, _, tries, told, sent = await end_state(rig, approval.request.contact_id)
    assert (status, tries, [o for o, _ in told], sent) == ("sent", 1, ["sent"], 1)


async def test_a_placement_heard_of_before_its_lift_revokes_on_what_is_known(rig: Rig) -> None:
    """The one case where what channels knows when it acts matters: an old placement read after the approval
    and before its lift (the lift is on its way) revokes: the safe side. The scheduler plans a new step."""
    approval = rig.approval(Channel.SMS, 6, "+8613812345678")
    placed, lifted = unrelated_holds(rig, approval)["lifted before the approval"]
    for what in (approval, placed, lifted):
        await deliver(rig, what)
    assert (await end_state(rig, approval.request.contact_id))[0] == "revoked"


async def test_the_newest_fact_of_a_hold_wins_whatever_the_order(rig: Rig) -> None:
    """A lift older than the placement stored (a hold placed again after it) does not lift it; a placement
    older than the lift stored does not place it again; at the same instant the lift wins."""
    approval = rig.approval(Channel.SMS, 4, "+8613812345678")
    t1, t2 = PLACED_AT, PLACED_AT + timedelta(minutes=1)
    cases = {"H-late-lift": [("placed", t2), ("lifted", t1)], "H-late-placement": [("lifted", t2), ("placed", t1)],
             "H-tie": [("placed", t1), ("lifted", t1)], "H-tie-reversed": [("lifted", t1), ("placed", t1)]}
    for hold_id, facts in cases.items():
        for action, at in facts:
            await deliver(rig, hold_event(rig, approval, action, hold_id=hold_id, at=at, account_id="ACC-X"))
    async with rig.runtime.sessions() as session:
        stored = {h.hold_id: (h.state, h.state_at, h.reason) for h in (await session.execute(
            select(KnownHold).where(KnownHold.tenant == rig.tenant))).scalars()}  # type: ignore[arg-type]
    placed_reason = "complaint CMP-9 filed"
    assert stored == {"H-late-lift": ("placed", t2, placed_reason), "H-late-placement": ("lifted", t2, placed_reason),
                      "H-tie": ("lifted", t1, placed_reason), "H-tie-reversed": ("lifted", t1, placed_reason)}


async def test_a_hold_that_comes_into_force_after_both_arrived_is_checked_before_dispatch(rig: Rig) -> None:
    """Neither the approval nor the hold revokes while the hold has not started; the dispatcher's last check
    does, once it has: the contact is revoked, never handed to the provider, and its claim is undone."""
    approval = rig.approval(Channel.SMS, 5, "+8613812345678")
    starts = datetime.now(UTC) + timedelta(seconds=1)
    await deliver(rig, approval)
    await deliver(rig, hold_event(rig, approval, "placed", starts_at=starts, at=datetime.now(UTC)))
    assert (await rig.attempts())[approval.request.contact_id].status == "sending"
    await asyncio.sleep(max(0.0, (starts - datetime.now(UTC)).total_seconds()) + 0.2)

    detail = "revoked: complaint hold H-1"
    assert await end_state(rig, approval.request.contact_id) == ("revoked", detail, 0, [("revoked", detail)], 0)
    row = (await rig.attempts())[approval.request.contact_id]
    assert row.dispatched_at is None


def statements(rig: Rig) -> Any:
    return statements_on(rig.runtime.engine.sync_engine)


async def test_the_hold_checks_cost_the_same_statements_whatever_the_batch_size(rig: Rig) -> None:
    """A batch of holds, a batch of approvals (half of them under a hold heard of already), a batch of the other
    holds (revoking the other half), the dispatcher's pass: as many statements for 2 contacts as for 40."""
    counts = []
    for first, size in ((10, 2), (20, 40)):
        approvals = [rig.approval(Channel.SMS, n, "+8613812345678") for n in range(first, first + size)]
        holds = [hold_event(rig, a, "placed", hold_id=f"H-{a.request.account_id}") for a in approvals]
        with statements(rig) as seen:
            async with committed(rig.runtime.sessions) as uow:
                assert await service.revoke_for_holds(uow, holds=holds[::2]) == 0
            async with committed(rig.runtime.sessions) as uow:
                assert await service.record_approved(uow, approved=approvals, approved_at=[APPROVED_AT] * size) == size
            async with committed(rig.runtime.sessions) as uow:
                assert await service.revoke_for_holds(uow, holds=holds[1::2]) == size // 2
            await rig.drain()
        counts.append(len(seen))
        assert {a.status for a in (await rig.attempts()).values() if a.contact_id.endswith(
            tuple(f"-{n}" for n in range(first, first + size)))} == {"revoked"}
    assert counts[0] == counts[1], counts

"""A hold placed after an approval stops the contact before it is sent (compliance.hold-changed.v1 ->
services/channels/service.py revoke_for_holds), on the real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from services.channels import service
from services.channels.db.models import ContactAttempt
from shared.contracts.events import Channel, ContactOutcomeV1, HoldChangedV1
from tests.channels.integration.test_channels_service import approval, claim, record
from tests.helpers import committed_reading_outbox

pytestmark = pytest.mark.integration


def hold(tenant: str, *, account_id: str | None, customer_id: str, action: str = "placed") -> HoldChangedV1:
    now = datetime.now(UTC)
    return HoldChangedV1(tenant=tenant, hold_id=f"H-{uuid.uuid4().hex[:6]}", customer_id=customer_id,
                         account_id=account_id, kind="plan", action=action, reason="plan P-1 agreed",  # type: ignore[arg-type]
                         starts_at=now, occurred_at=now)


async def statuses(sessions: Any, tenant: str) -> dict[str, str]:
    async with sessions() as session:
        rows = (await session.execute(select(ContactAttempt).where(ContactAttempt.tenant == tenant))).scalars()
        return {a.contact_id: a.status for a in rows}


async def test_a_hold_revokes_what_waits_for_the_dispatcher_and_nothing_else(sessions) -> None:  # type: ignore[no-untyped-def]
    tenant, other = (f"t-{uuid.uuid4().hex[:8]}" for _ in range(2))
    held, in_flight, call, unrelated = (approval(tenant, ch, n) for ch, n in (
        (Channel.SMS, 1), (Channel.EMAIL, 2), (Channel.CALL, 1), (Channel.SMS, 3)))
    in_flight = approval(tenant, Channel.EMAIL, 1).model_copy(update={"request": in_flight.request.model_copy(
        update={"account_id": "A1", "customer_id": "C1", "contact_id": f"{tenant}-email-1"})})
    foreign = approval(other, Channel.SMS, 1)
    await record(sessions, [in_flight])
    await claim(sessions, tenant)  # the dispatcher holds the e-mail: it may already be going out
    await record(sessions, [held, call, unrelated, foreign])

    async with committed_reading_outbox(sessions) as (uow, outbox):
        revoked = await service.revoke_for_holds(uow, holds=[
            hold(tenant, account_id="A1", customer_id="C1"), hold(tenant, account_id="A1", customer_id="C1",
                                                                  action="lifted")])
    assert revoked == 1
    [announced] = [ContactOutcomeV1.model_validate(o.event.data) for o in outbox]
    assert (announced.contact_id, announced.outcome) == (held.request.contact_id, "revoked")
    assert announced.detail is not None and "plan hold" in announced.detail
    assert await statuses(sessions, tenant) == {
        held.request.contact_id: "revoked", in_flight.request.contact_id: "dispatching",
        call.request.contact_id: "task_created", unrelated.request.contact_id: "sending"}
    assert await statuses(sessions, other) == {foreign.request.contact_id: "sending"}  # another tenant's A1

    # a customer-wide hold reaches every account of the customer; a repeat changes nothing
    for expected in (1, 0):
        async with committed_reading_outbox(sessions) as (uow, _):
            assert await service.revoke_for_holds(uow, holds=[hold(tenant, account_id=None,
                                                                   customer_id="C3")]) == expected
    assert (await statuses(sessions, tenant))[unrelated.request.contact_id] == "revoked"

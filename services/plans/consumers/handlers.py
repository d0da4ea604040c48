"""Plans' consumers: one thin handler per topic; the use cases are in ``service.py``."""

from __future__ import annotations

from typing import Any

from services.plans import co_lending, promises, service, webhooks
from shared.contracts import topics
from shared.kafka.consumer import Delivery, Handler, idempotent
from shared.runtime import Runtime
from shared.uow import UnitOfWork


@idempotent  # the newest snapshot wins, an older or repeated one changes nothing: no inbox row needed
async def on_account_overdue(uow: UnitOfWork, deliveries: list[Delivery]) -> None:
    await service.record_overdue(uow, overdue=[(d.payload, d.event) for d in deliveries])
    # payments that arrived before their account's notice are split now (once: a repeat splits nothing)
    await co_lending.split_pending(uow, accounts=co_lending.keys_of([d.payload for d in deliveries]))


@idempotent  # the newest segment wins, an older or repeated one changes nothing
async def on_account_segmented(uow: UnitOfWork, deliveries: list[Delivery]) -> None:
    await service.record_segments(uow, segmented=[(d.payload, d.event) for d in deliveries])


async def on_payment_received(uow: UnitOfWork, deliveries: list[Delivery]) -> None:
    await service.apply_payments(uow, payments=[d.payload for d in deliveries])
    await promises.apply_payments(uow, payments=[d.payload for d in deliveries])  # kept promises
    await co_lending.split_pending(uow, accounts=co_lending.keys_of([d.payload for d in deliveries]))  # lenders


@idempotent  # one delivery per (subscription, event id): a repeated event adds nothing
async def on_plans_event(uow: UnitOfWork, deliveries: list[Delivery]) -> None:
    """Plans' own plan events, promise events and write-offs, for the partners' webhooks."""
    await webhooks.enqueue(uow, events=[(d.topic, d.event, d.payload) for d in deliveries])


def build_handlers(runtime: Runtime[Any]) -> dict[str, Handler]:
    return {topics.ACCOUNT_OVERDUE.name: on_account_overdue, topics.PAYMENT_RECEIVED.name: on_payment_received,
            topics.ACCOUNT_SEGMENTED.name: on_account_segmented,
            # the partners' webhooks (webhooks.py)
            topics.PLAN_EVENT.name: on_plans_event, topics.PROMISE_EVENT.name: on_plans_event,
            topics.WRITE_OFF.name: on_plans_event}

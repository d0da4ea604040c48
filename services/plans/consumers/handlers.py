"""Plans' consumers: one thin handler per topic; the use cases are in ``service.py``."""

from __future__ import annotations

from typing import Any

from services.plans import service
from shared.contracts import topics
from shared.kafka.consumer import Delivery, Handler, idempotent
from shared.runtime import Runtime
from shared.uow import UnitOfWork


@idempotent  # the newest snapshot wins, an older or repeated one changes nothing: no inbox row needed
async def on_account_overdue(uow: UnitOfWork, deliveries: list[Delivery]) -> None:
    await service.record_overdue(uow, overdue=[(d.payload, d.event) for d in deliveries])


@idempotent  # the newest segment wins, an older or repeated one changes nothing
async def on_account_segmented(uow: UnitOfWork, deliveries: list[Delivery]) -> None:
    await service.record_segments(uow, segmented=[(d.payload, d.event) for d in deliveries])


async def on_payment_received(uow: UnitOfWork, deliveries: list[Delivery]) -> None:
    await service.apply_payments(uow, payments=[d.payload for d in deliveries])


def build_handlers(runtime: Runtime[Any]) -> dict[str, Handler]:
    return {topics.ACCOUNT_OVERDUE.name: on_account_overdue, topics.PAYMENT_RECEIVED.name: on_payment_received,
            topics.ACCOUNT_SEGMENTED.name: on_account_segmented}

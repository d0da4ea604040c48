"""Scheduler's consumers: one thin handler per topic; the use cases are in ``service.py``."""

from __future__ import annotations

from functools import partial
from typing import Any

from services.scheduler import service
from services.scheduler.service import experiments
from shared.contracts import topics
from shared.kafka.consumer import Delivery, Handler
from shared.runtime import Runtime
from shared.uow import UnitOfWork


async def on_account_segmented(uow: UnitOfWork, deliveries: list[Delivery]) -> None:
    await service.record_segmented(uow, segmented=[(d.payload, d.event) for d in deliveries])


async def on_contact_rejected(uow: UnitOfWork, deliveries: list[Delivery]) -> None:
    await service.record_rejections(uow, rejections=[d.payload for d in deliveries])


async def on_contact_outcome(uow: UnitOfWork, deliveries: list[Delivery], *, promise_grace_days: int = 1) -> None:
    await service.record_outcomes(uow, outcomes=[d.payload for d in deliveries],
                                  promise_grace_days=promise_grace_days)


async def on_plan_event(uow: UnitOfWork, deliveries: list[Delivery]) -> None:
    await service.apply_plan_events(uow, plan_events=[d.payload for d in deliveries])


async def on_promise_event(uow: UnitOfWork, deliveries: list[Delivery]) -> None:
    await service.apply_promise_events(uow, events=[d.payload for d in deliveries])


async def on_payment_received(uow: UnitOfWork, deliveries: list[Delivery]) -> None:
    await service.apply_payments(uow, payments=[d.payload for d in deliveries])


async def on_hold_changed(uow: UnitOfWork, deliveries: list[Delivery]) -> None:
    await experiments.record_holds(uow, holds=[d.payload for d in deliveries])


def build_handlers(runtime: Runtime[Any]) -> dict[str, Handler]:
    return {
        topics.ACCOUNT_SEGMENTED.name: on_account_segmented,
        topics.CONTACT_REJECTED.name: on_contact_rejected,
        topics.CONTACT_OUTCOME.name: partial(on_contact_outcome,
                                             promise_grace_days=runtime.settings.promise_grace_days),
        topics.PLAN_EVENT.name: on_plan_event,
        topics.PAYMENT_RECEIVED.name: on_payment_received,
        topics.HOLD_CHANGED.name: on_hold_changed,
        topics.PROMISE_EVENT.name: on_promise_event,
    }

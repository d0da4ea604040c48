"""Compliance's consumer: one thin handler; the use cases are in ``service.py``."""

from __future__ import annotations

from typing import Any

from services.compliance import service
from shared.contracts import topics
from shared.kafka.consumer import Delivery, Handler
from shared.runtime import Runtime
from shared.uow import UnitOfWork


async def on_contact_requested(uow: UnitOfWork, deliveries: list[Delivery]) -> None:
    await service.decide_requests(uow, requests=[(d.payload, d.event) for d in deliveries])


def build_handlers(runtime: Runtime[Any]) -> dict[str, Handler]:
    return {topics.CONTACT_REQUESTED.name: on_contact_requested}

"""Channels' consumers: one thin handler per topic; the use cases are in ``service.py``."""

from __future__ import annotations

from functools import partial
from typing import Any

from services.channels import service
from shared.contracts import topics
from shared.identity import contact_point_key_for
from shared.kafka.consumer import Delivery, Handler
from shared.runtime import Runtime
from shared.uow import UnitOfWork


async def on_contact_approved(uow: UnitOfWork, deliveries: list[Delivery],
                              destination_key_of: service.DestinationKeyOf | None = None) -> None:
    await service.record_approved(uow, approved=[d.payload for d in deliveries], destination_key_of=destination_key_of,
                                  approved_at=[d.event.time for d in deliveries])


async def on_hold_changed(uow: UnitOfWork, deliveries: list[Delivery]) -> None:
    await service.revoke_for_holds(uow, holds=[d.payload for d in deliveries])


def build_handlers(runtime: Runtime[Any]) -> dict[str, Handler]:
    def destination_key_of(tenant: str, channel: str, sealed: str | None) -> str | None:
        return contact_point_key_for(runtime.identity, runtime.cipher, tenant=tenant, channel=channel, sealed=sealed)

    return {topics.CONTACT_APPROVED.name: partial(on_contact_approved, destination_key_of=destination_key_of),
            topics.HOLD_CHANGED.name: on_hold_changed}

"""Segmentation's consumers: one thin handler per topic; the use cases are in ``service.py``."""

from __future__ import annotations

from functools import partial
from typing import Any

from services.segmentation import service
from shared.contracts import topics
from shared.contracts.events import AccountOverdueV1
from shared.identity import borrower_key_for
from shared.kafka.consumer import Delivery, Handler
from shared.runtime import Runtime
from shared.uow import UnitOfWork


async def on_account_overdue(uow: UnitOfWork, deliveries: list[Delivery],
                             borrower_key_of: service.BorrowerKeyOf | None = None) -> None:
    await service.record_overdue(uow, overdue=[(d.payload, d.event) for d in deliveries],
                                 borrower_key_of=borrower_key_of)


async def on_instalment_due(uow: UnitOfWork, deliveries: list[Delivery],
                           borrower_key_of: service.BorrowerKeyOf | None = None) -> None:
    await service.record_due(uow, due=[(d.payload, d.event) for d in deliveries], borrower_key_of=borrower_key_of)


async def on_payment_received(uow: UnitOfWork, deliveries: list[Delivery]) -> None:
    await service.record_payments(uow, payments=[d.payload for d in deliveries])


def build_handlers(runtime: Runtime[Any]) -> dict[str, Handler]:
    def borrower_key_of(p: AccountOverdueV1) -> str | None:
        return borrower_key_for(runtime.identity, runtime.cipher, tenant=p.tenant, national_id=p.contact.national_id,
                                phone=p.contact.phone)

    return {topics.ACCOUNT_OVERDUE.name: partial(on_account_overdue, borrower_key_of=borrower_key_of),
            topics.INSTALMENT_DUE.name: partial(on_instalment_due, borrower_key_of=borrower_key_of),
            topics.PAYMENT_RECEIVED.name: on_payment_received}

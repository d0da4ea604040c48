"""Compliance's consumer: thin handlers, one per topic; the use cases are in ``service/``."""

from __future__ import annotations

from typing import Any

from services.compliance import service
from services.compliance.service import context, plans_facts, records
from shared.contracts import topics
from shared.kafka.consumer import Delivery, Handler, idempotent
from shared.runtime import Runtime
from shared.uow import UnitOfWork


@idempotent  # newest outcome wins, an older or repeated one changes nothing: no inbox row needed
async def on_contact_outcome(uow: UnitOfWork, deliveries: list[Delivery]) -> None:
    await records.record_outcomes(uow, outcomes=[d.payload for d in deliveries])


async def on_plan_event(uow: UnitOfWork, deliveries: list[Delivery]) -> None:
    await records.record_plan_events(uow, events=[d.payload for d in deliveries], causes=[d.event for d in deliveries])


async def on_opt_out(uow: UnitOfWork, deliveries: list[Delivery]) -> None:
    await records.record_opt_outs(uow, opt_outs=[d.payload for d in deliveries])


async def on_promise_event(uow: UnitOfWork, deliveries: list[Delivery]) -> None:
    await plans_facts.record_promise_events(uow, events=[d.payload for d in deliveries],
                                            causes=[d.event for d in deliveries])


def build_handlers(runtime: Runtime[Any]) -> dict[str, Handler]:
    # the keys that turn a request's sealed destination into its contact-point key (service/context.py), and the
    # calendar of tenants that chose none
    keys = context.ContactKeys(runtime.cipher, runtime.identity)
    country = context.calendar_country(runtime.settings)

    async def on_contact_requested(uow: UnitOfWork, deliveries: list[Delivery]) -> None:
        await service.decide_requests(uow, requests=[(d.payload, d.event) for d in deliveries], keys=keys,
                                      default_country=country)

    async def on_customer_request(uow: UnitOfWork, deliveries: list[Delivery]) -> None:
        await plans_facts.record_customer_requests(uow, requests=[d.payload for d in deliveries],
                                                   cipher=runtime.cipher, causes=[d.event for d in deliveries])

    return {topics.CONTACT_REQUESTED.name: on_contact_requested,
            topics.CONTACT_OUTCOME.name: on_contact_outcome,
            topics.PLAN_EVENT.name: on_plan_event,
            topics.OPT_OUT.name: on_opt_out,
            topics.PROMISE_EVENT.name: on_promise_event,
            topics.CUSTOMER_REQUEST.name: on_customer_request}

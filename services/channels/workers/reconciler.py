"""The reconciler: asks the SMS provider about SMS that got no final status (their receipts were lost,
for instance while channels was down), and gives up on them after the give-up age.

One pass claims a batch of SMS 'sent' more than CHANNELS_RECONCILE_AFTER_S ago whose next check is due
(SKIP LOCKED, committed with the next check moved ahead: replicas never poll the same rows, and a crash
mid-pass only delays them), asks the provider about each, then records the answers in a second unit of
work through the same use case as a receipt (``service.record_polled``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx

from services.channels import service
from services.channels.adapters.sms import SmsProvider
from services.channels.settings import Settings
from services.channels.workers.dispatcher import sms_provider
from shared.runtime import Runtime

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(self, runtime: Runtime[Settings], sms: SmsProvider) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.sms = sms

    async def run(self) -> None:
        while not self.runtime.stopping.is_set():
            try:
                while await self.reconcile_once() >= self.settings.reconcile_batch:
                    pass
            except Exception:
                log.exception("reconcile pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.runtime.stopping.wait(), self.settings.reconcile_interval_s)

    async def reconcile_once(self) -> int:
        """Claim, poll and record one batch. Returns how many attempts it claimed."""
        s = self.settings
        async with self.runtime.units() as uow:
            claimed = await service.claim_for_reconcile(uow, after_s=s.reconcile_after_s, limit=s.reconcile_batch)
            await uow.commit()
        if not claimed:
            return 0
        reports = await self.sms.statuses([(a.contact_id, a.provider_ref, a.provider_account or s.sms_account)
                                           for a in claimed])
        async with self.runtime.units() as uow:
            await service.record_polled(uow, claimed=claimed, reports=reports, give_up_s=s.reconcile_give_up_s,
                                        legacy_account=s.sms_account)
            await uow.commit()
        return len(claimed)


async def reconcile_loop(runtime: Runtime[Settings]) -> None:
    """Runs the reconciler for the service's lifetime."""
    async with httpx.AsyncClient() as client:
        await Reconciler(runtime, sms_provider(client, runtime.settings)).run()

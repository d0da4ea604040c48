"""Durable timers: poll for due steps, for requests that got no verdict in time (the sweeper) and for promises to
pay whose deadline passed, one unit of work per claim; a crash loses nothing, the rows are still due."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from services.scheduler import service
from services.scheduler.settings import Settings
from shared.runtime import Runtime

log = logging.getLogger(__name__)


async def claim_once(runtime: Runtime[Settings], *, limit: int = 500) -> int:
    """Claim and request one batch of due steps; returns how many."""
    async with runtime.units() as uow:
        requested = await service.request_due_steps(uow, limit=limit)
        await uow.commit()
    return requested


async def resend_once(runtime: Runtime[Settings], *, limit: int = 500) -> int:
    """Request again one batch of steps whose request got no verdict in time; returns how many."""
    async with runtime.units() as uow:
        resent = await service.resend_stale_requests(
            uow, older_than=timedelta(seconds=runtime.settings.request_timeout_s), limit=limit)
        await uow.commit()
    return resent


async def check_promises_once(runtime: Runtime[Settings], *, limit: int = 500) -> int:
    """Check one batch of promises to pay whose deadline passed; returns how many."""
    async with runtime.units() as uow:
        checked = await service.check_promises(uow, limit=limit)
        await uow.commit()
    return checked


async def timer_loop(runtime: Runtime[Settings]) -> None:
    """Runs for the service's lifetime."""
    while not runtime.stopping.is_set():
        try:
            while await claim_once(runtime, limit=runtime.settings.timer_batch) > 0:
                pass
            while await resend_once(runtime, limit=runtime.settings.timer_batch) > 0:
                pass
            while await check_promises_once(runtime, limit=runtime.settings.timer_batch) > 0:
                pass
        except Exception:
            log.exception("timer pass failed")
        await asyncio.sleep(runtime.settings.timer_interval_s)

"""The monitor: a timer loop deciding promises to pay whose deadline passed and breaking plans with an instalment
unpaid past its grace, a batch of each per tick, each batch one unit of work. Rows are claimed with FOR UPDATE SKIP
LOCKED, so replicas share the work and a crash loses nothing: the rows are still due on the next tick."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from services.plans import monitoring, promises
from services.plans.settings import Settings
from shared.runtime import Runtime

log = logging.getLogger(__name__)


async def decide_promises_once(runtime: Runtime[Settings], *, now: datetime | None = None) -> int:
    """Decide one batch of promises whose deadline passed; returns how many were claimed."""
    async with runtime.units() as uow:
        claimed = await promises.decide_due_promises(uow, now=now or datetime.now(UTC),
                                                     limit=runtime.settings.monitor_batch)
        await uow.commit()
    return claimed


async def break_plans_once(runtime: Runtime[Settings], *, now: datetime | None = None) -> int:
    """Break one batch of plans with an instalment unpaid past its grace; returns how many broke."""
    async with runtime.units() as uow:
        broken = await monitoring.break_missed_plans(uow, now=now or datetime.now(UTC),
                                                     grace_days=runtime.settings.plan_grace_days,
                                                     limit=runtime.settings.monitor_batch)
        await uow.commit()
    return broken


async def monitor_loop(runtime: Runtime[Settings]) -> None:
    """Runs for the service's lifetime: a tick at start, then one every PLANS_MONITOR_INTERVAL_SECONDS. A failed
    tick (the database away) is logged and tried again on the next; it never stops the service."""
    interval = runtime.settings.monitor_interval_seconds
    while not runtime.stopping.is_set():
        for tick in (decide_promises_once, break_plans_once):
            try:
                # bounded, so a database that hangs rather than refuses is tried again too
                await asyncio.wait_for(tick(runtime), timeout=max(interval, 10.0))
            except Exception as exc:
                log.warning("plans monitor tick failed; tried again on the next", extra={
                    "tick": tick.__name__, "error": repr(exc), "retry_in_s": interval})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.stopping.wait(), interval)

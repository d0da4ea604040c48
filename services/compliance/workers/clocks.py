"""The complaint clocks on /metrics (CN-COMPLAINT: answered within 15 days, 30 if complex, 60 at most).

Read from the database every COMPLIANCE_COMPLAINT_CLOCKS_INTERVAL_S by this loop, never at scrape time, so a
scrape never waits for PostgreSQL: while the database is away the gauges keep their last values and
``compliance_complaint_clocks_refreshed_timestamp_seconds`` shows how old they are (alert ComplaintClocksStale).
A failed read is logged and tried again on the next pass; it never stops the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime

from services.compliance.service import records
from services.compliance.settings import Settings
from shared import metrics
from shared.runtime import Runtime

log = logging.getLogger(__name__)


class ComplaintClockGauges:
    """Sets the gauges from a read; a tenant seen before whose complaints are all answered goes to 0 (its series
    stays, so an alert on it resolves rather than going stale)."""

    def __init__(self) -> None:
        self.tenants: set[str] = set()

    def publish(self, clocks: dict[str, records.ComplaintClocks], *, at: float) -> None:
        none = records.ComplaintClocks(open=0, overdue=0, due_within=dict.fromkeys(records.CLOCK_WINDOWS, 0))
        self.tenants |= clocks.keys()
        for tenant in sorted(self.tenants):
            c = clocks.get(tenant, none)
            metrics.COMPLAINTS_OPEN.labels(tenant).set(c.open)
            metrics.COMPLAINTS_OVERDUE.labels(tenant).set(c.overdue)
            for within, n in c.due_within.items():
                metrics.COMPLAINTS_DUE_SOON.labels(tenant, within).set(n)
        metrics.COMPLAINT_CLOCKS_REFRESHED.set(at)


async def refresh_once(runtime: Runtime[Settings], gauges: ComplaintClockGauges) -> None:
    """Read every tenant's clocks in one statement and set the gauges."""
    async with runtime.sessions() as session:
        clocks = await records.complaint_clocks(session, now=datetime.now(UTC))
    gauges.publish(clocks, at=time.time())


async def complaint_clocks_loop(runtime: Runtime[Settings]) -> None:
    """Runs for the service's lifetime: a pass at start, then one every interval."""
    interval = runtime.settings.complaint_clocks_interval_s
    gauges = ComplaintClockGauges()
    failures = 0
    while not runtime.stopping.is_set():
        try:
            # bounded, so a database that hangs rather than refuses is tried again too
            await asyncio.wait_for(refresh_once(runtime, gauges), timeout=max(interval, 10.0))
            if failures:
                log.info("complaint clocks refreshed again", extra={"failures": failures})
            failures = 0
        except Exception as exc:  # the database is away, or anything else: keep the last values, try again
            failures += 1
            log.warning("complaint clocks not refreshed; the gauges keep their last values",
                        extra={"error": repr(exc), "failures": failures, "retry_in_s": interval})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.stopping.wait(), interval)

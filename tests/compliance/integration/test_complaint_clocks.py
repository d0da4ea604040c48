"""The complaint clocks on compliance's /metrics (services/compliance/workers/clocks.py), on the real PostgreSQL:
counted per tenant in one read (open, overdue, due within 24 h and 72 h), a tenant whose complaints are all
answered goes back to 0, and a read that fails keeps the last values and is tried again, never ending the loop."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import update

from services.compliance.db import repository as repo
from services.compliance.db.models import Complaint
from services.compliance.service import records
from services.compliance.workers import clocks
from shared import metrics

pytestmark = pytest.mark.integration


def gauge(g: Any, *labels: str) -> float:
    return float(g.labels(*labels)._value.get())


async def file(sessions: Any, tenant: str, *due_in: timedelta, status: str = "open") -> None:
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        for d in due_in:
            await repo.add_row(session, Complaint, {
                "id": f"cmp-{uuid.uuid4().hex}", "tenant": tenant, "customer_id": "C1", "account_id": "A1",
                "received_at": now + d - timedelta(days=15), "channel": "phone", "summary": "sealed", "complexity":
                "simple", "due_at": now + d, "status": status, "created_by": tenant})


def runtime(sessions: Callable[[], Any], interval_s: float = 0.05) -> Any:
    return SimpleNamespace(settings=SimpleNamespace(complaint_clocks_interval_s=interval_s), sessions=sessions,
                           stopping=asyncio.Event())


async def test_clocks_are_counted_per_tenant(sessions: Any) -> None:
    a, b = (f"t-{uuid.uuid4().hex[:8]}" for _ in range(2))
    await file(sessions, a, -timedelta(days=1), -timedelta(minutes=1), timedelta(hours=2), timedelta(hours=30),
               timedelta(days=10))
    await file(sessions, b, timedelta(days=2))
    await file(sessions, b, -timedelta(days=3), status="answered")
    async with sessions() as session:
        got = await records.complaint_clocks(session, now=datetime.now(UTC))
    assert got[a] == records.ComplaintClocks(open=5, overdue=2, due_within={"72h": 2, "24h": 1})
    assert got[b] == records.ComplaintClocks(open=1, overdue=0, due_within={"72h": 1, "24h": 0})


async def test_the_loop_sets_the_gauges_keeps_them_through_a_failure_and_zeroes_an_answered_tenant(
        sessions: Any, caplog: pytest.LogCaptureFixture) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    await file(sessions, tenant, -timedelta(hours=1), timedelta(hours=5))
    failing = asyncio.Event()

    def maybe_failing() -> Any:
        if failing.is_set():
            raise ConnectionRefusedError("the database is away")
        return sessions()

    rt = runtime(maybe_failing)
    loop = asyncio.create_task(clocks.complaint_clocks_loop(rt))
    try:
        async def until(condition: Callable[[], bool]) -> None:
            for _ in range(200):
                if condition():
                    return
                await asyncio.sleep(0.02)
            raise AssertionError("not in time")

        await until(lambda: gauge(metrics.COMPLAINTS_OPEN, tenant) == 2)
        assert gauge(metrics.COMPLAINTS_OVERDUE, tenant) == 1
        assert [gauge(metrics.COMPLAINTS_DUE_SOON, tenant, w) for w in ("24h", "72h")] == [1, 1]

        failing.set()
        await until(lambda: "complaint clocks not refreshed" in caplog.text)
        refreshed = metrics.COMPLAINT_CLOCKS_REFRESHED._value.get()
        await asyncio.sleep(0.2)  # several failed passes: the loop lives on, the values stay
        assert not loop.done()
        assert gauge(metrics.COMPLAINTS_OPEN, tenant) == 2
        assert metrics.COMPLAINT_CLOCKS_REFRESHED._value.get() == refreshed

        async with sessions() as session, session.begin():  # every complaint of the tenant answered
            answered = update(repo.COMPLAINTS).where(repo.COMPLAINTS.c.tenant == tenant).values(status="answered")
            await session.execute(answered)
        failing.clear()
        await until(lambda: gauge(metrics.COMPLAINTS_OPEN, tenant) == 0)
        assert gauge(metrics.COMPLAINTS_OVERDUE, tenant) == gauge(metrics.COMPLAINTS_DUE_SOON, tenant, "24h") == 0
        assert metrics.COMPLAINT_CLOCKS_REFRESHED._value.get() > refreshed
    finally:
        rt.stopping.set()
        await asyncio.wait_for(loop, 5)

"""The webhook dispatcher while the database is away: one warning line per pass, waiting longer each time (up to
a cap), and back to its poll interval once a pass works; an unexpected error keeps its traceback."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from services.plans.settings import Settings
from services.plans.workers import webhooks as worker


class Flaky(worker.WebhookDispatcher):
    def __init__(self, runtime: Any, failures: list[BaseException]) -> None:
        super().__init__(runtime, httpx.AsyncClient())
        self.failures = failures
        self.passes = 0

    async def deliver_once(self) -> int:
        self.passes += 1
        if self.failures:
            raise self.failures.pop(0)
        self.runtime.stopping.set()
        return 0


async def test_an_outage_is_one_warning_per_pass_with_a_growing_wait(monkeypatch: pytest.MonkeyPatch,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    waits: list[float] = []

    async def no_wait(awaitable: Any, timeout: float) -> None:  # noqa: ASYNC109 - asyncio.wait_for's signature
        waits.append(timeout)
        awaitable.close()
        raise TimeoutError

    monkeypatch.setattr(worker.asyncio, "wait_for", no_wait)
    runtime = SimpleNamespace(settings=Settings(app_env="test", webhook_poll_interval_s=1.0),
                              stopping=asyncio.Event())
    refused = [ConnectionRefusedError(111, "Connect call failed") for _ in range(7)]
    dispatcher = Flaky(runtime, [*refused, RuntimeError("a bug")])
    with caplog.at_level(logging.INFO, logger=worker.__name__):
        await dispatcher.run()
    assert dispatcher.passes == 9
    assert waits == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0, 1.0]  # back to the poll interval once it works
    records = [(r.levelname, r.exc_info is not None) for r in caplog.records]
    assert records == [("WARNING", False)] * 7 + [("ERROR", True)]

"""A service answers HTTP before its consumer has joined the group, and its liveness fails once the
consumer halted (so an orchestrator restarts it); on the real PostgreSQL and broker."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from services.scheduler.app import create_app
from services.scheduler.consumers.handlers import build_handlers
from services.scheduler.settings import Settings
from shared.kafka.consumer import ConsumerHalted
from shared.runtime import Runtime

pytestmark = pytest.mark.integration


async def test_the_consumer_joins_in_the_background_and_a_halt_fails_liveness(infra) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(database_url=infra.database_url, kafka_bootstrap_servers=infra.kafka, app_env="test",
                        kafka_rebalance_timeout_ms=1000)
    runtime: Runtime[Settings] = Runtime(settings)
    app = create_app(settings)
    app.state.runtime = runtime
    try:
        await runtime.start(build_handlers(runtime))
        # start() returned before the group join finished: HTTP is served, readiness says so
        assert runtime.consumer_state() == "starting"
        assert runtime.alive
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            assert (await client.get("/healthz")).status_code == 200
            not_ready = await client.get("/readyz")
            assert not_ready.status_code == 503 and not_ready.json()["checks"]["consumer"] == "starting"

            async with asyncio.timeout(60):
                while runtime.consumer_state() != "ok":  # noqa: ASYNC110 - polling the state is the point
                    await asyncio.sleep(0.1)
            assert (await client.get("/readyz")).json()["checks"] == {"database": "ok", "kafka": "ok",
                                                                       "consumer": "ok"}

            # the consumer halts (say, the DLQ limit): liveness fails until the service is restarted
            consumer = runtime.consumer
            assert consumer is not None and consumer._task is not None

            async def halting_fetch() -> None:
                raise ConsumerHalted("3 consecutive poison messages (limit 2)")

            consumer._fetch = halting_fetch  # type: ignore[assignment, method-assign]
            with pytest.raises(ConsumerHalted):
                await consumer._task
            assert not runtime.alive
            dead = await client.get("/healthz")
            assert dead.status_code == 503
            assert dead.headers["content-type"] == "application/problem+json"
            assert dead.json()["consumer"] == "halted: 3 consecutive poison messages (limit 2)"
    finally:
        await runtime.stop()

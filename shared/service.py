"""The runtime every service shares: engine, producer, outbox relay, consumers, background loops,
and the FastAPI app around them with /healthz, /readyz and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from shared.crypto import PiiCipher
from shared.db import create_engine, session_factory
from shared.http import MetricsMiddleware, install_problem_handlers, problem
from shared.kafka.consumer import ConsumerRunner, Handler
from shared.kafka.producer import create_producer
from shared.kafka.relay import OutboxRelay
from shared.logging import configure_logging
from shared.settings import ServiceSettings

log = logging.getLogger(__name__)

BackgroundLoop = Callable[["Runtime"], Coroutine[Any, Any, None]]


class Runtime:
    """Everything a service holds while it runs. Built in the app factory, started in the lifespan."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.cipher = PiiCipher(settings.pii_keys, settings.pii_active_key)
        self.engine = create_engine(settings)
        self.sessions = session_factory(self.engine)
        self.producer = create_producer(settings)
        self.relay = OutboxRelay(self.sessions, self.producer, poll_interval_s=settings.outbox_poll_interval_s,
                                 linger_s=settings.outbox_linger_ms / 1000)
        self.consumer: ConsumerRunner | None = None
        # Called after every committed consumer transaction (the relay publishes at once).
        self.commit_hooks: list[Callable[[], None]] = [self.relay.wake]
        self._background: list[asyncio.Task[None]] = []
        self.stopping = asyncio.Event()

    async def start(self, handlers: dict[str, Handler], loops: Sequence[BackgroundLoop] = ()) -> None:
        await _with_startup_retries("Kafka", self.producer.start, self.settings.startup_timeout_s)
        self.relay.start()
        if handlers:
            s = self.settings
            self.consumer = ConsumerRunner(
                group=s.consumer_group, bootstrap_servers=s.kafka_bootstrap_servers, handlers=handlers,
                sessions=self.sessions, producer=self.producer, on_commit=self._after_commit,
                fetch_max_wait_ms=s.kafka_fetch_max_wait_ms, max_batch=s.kafka_max_batch,
                max_transient_retries=s.max_transient_retries, dlq_max_consecutive=s.dlq_max_consecutive,
                session_timeout_ms=s.kafka_session_timeout_ms, rebalance_timeout_ms=s.kafka_rebalance_timeout_ms,
                linger_ms=s.kafka_consumer_linger_ms,
            )
            await _with_startup_retries("Kafka consumer group", self.consumer.start, self.settings.startup_timeout_s)
        self._background = [asyncio.create_task(loop(self), name=loop.__name__) for loop in loops]

    def _after_commit(self) -> None:
        for hook in self.commit_hooks:
            hook()

    async def stop(self) -> None:
        """Drain in order: consumers, background loops, outbox, producer, database."""
        self.stopping.set()
        if self.consumer is not None:
            await self.consumer.stop(self.settings.shutdown_timeout_s)
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.relay.stop()
        await self.producer.stop()
        await self.engine.dispose()

    async def readiness(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            async with self.engine.connect() as conn:
                await asyncio.wait_for(conn.execute(text("SELECT 1")), 2)
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        try:
            await asyncio.wait_for(self.producer.client.fetch_all_metadata(), 3)
            checks["kafka"] = "ok"
        except Exception as exc:
            checks["kafka"] = f"error: {type(exc).__name__}"
        if self.consumer is not None:
            checks["consumer"] = "ok" if self.consumer.running else f"halted: {self.consumer.halted_reason}"
        return checks


async def _with_startup_retries(what: str, start: Callable[[], Any], timeout_s: float) -> None:
    """Dependencies often come up after us (compose, Kubernetes): retry with backoff, then fail loudly."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    delay = 0.5
    while True:
        try:
            await start()
            return
        except Exception as exc:
            if asyncio.get_running_loop().time() + delay > deadline:
                raise RuntimeError(f"{what} unavailable after {timeout_s:.0f}s: {exc!r}") from exc
            log.warning("%s unavailable; retrying", what, extra={"delay_s": delay, "error": repr(exc)})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def build_app(
    settings: ServiceSettings, *, title: str, routers: Sequence[APIRouter] = (),
    handlers: Callable[[Runtime], dict[str, Handler]] = lambda rt: {},
    loops: Sequence[BackgroundLoop] = (), description: str = "",
) -> FastAPI:
    """Assemble a service: the app owns a Runtime, started and drained by the lifespan."""
    configure_logging(settings.service_name, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(settings)
        app.state.runtime = runtime
        await runtime.start(handlers(runtime), loops)
        log.info("service started", extra={"port": settings.port})
        try:
            yield
        finally:
            await runtime.stop()
            log.info("service stopped")

    app = FastAPI(title=title, description=description, version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.add_middleware(MetricsMiddleware)
    install_problem_handlers(app)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], response_model=None)
    async def readyz() -> Any:
        checks = await app.state.runtime.readiness()
        if all(v == "ok" for v in checks.values()):
            return {"status": "ready", "checks": checks}
        return problem(503, "Not ready", "A dependency is unavailable.", checks=checks)

    @app.get("/metrics", tags=["ops"])
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    for router in routers:
        app.include_router(router)
    return app


def serve(app_factory: Callable[[], FastAPI], settings: ServiceSettings) -> None:
    """Run one service with uvicorn; SIGTERM/SIGINT trigger the lifespan drain."""
    import uvicorn

    uvicorn.run(app_factory(), host=settings.host, port=settings.port, log_config=None,
                access_log=False, timeout_graceful_shutdown=int(settings.shutdown_timeout_s) + 5)


def runtime_of(app: Any) -> Runtime:
    return app.state.runtime  # type: ignore[no-any-return]

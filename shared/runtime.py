"""A service's runtime: engine, producer, outbox relay, unit-of-work factory, consumer and workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import text

from shared import metrics
from shared.access.verifier import KeyVerifier
from shared.crypto import PiiCipher
from shared.db import create_engine, session_factory
from shared.identity import IdentityKeys
from shared.kafka.consumer import ConsumerConfig, ConsumerRunner, Handler
from shared.kafka.producer import create_producer
from shared.kafka.relay import OutboxRelay
from shared.settings import ServiceSettings
from shared.uow import UnitOfWorkFactory

log = logging.getLogger(__name__)

S = TypeVar("S", bound=ServiceSettings)
Worker = Callable[["Runtime[Any]"], Coroutine[Any, Any, None]]
"""A background loop (timers, dispatchers) that runs for the service's lifetime."""


class Runtime(Generic[S]):
    """Everything a service holds while it runs. Built in the app factory, started in the lifespan.

    Typed by the service's settings class, so ``runtime.settings.timer_interval_s`` is checked.
    """

    def __init__(self, settings: S) -> None:
        self.settings: S = settings
        self.cipher = PiiCipher(settings.pii_keys, settings.pii_active_key)
        self.identity = IdentityKeys(settings.identity_secret)
        self.engine = create_engine(settings)
        self.sessions = session_factory(self.engine)
        # API keys (docs/access.md): the API_KEYS setting's, and those in access.api_keys, cached briefly
        self.keys = KeyVerifier(self.engine, static_keys=settings.api_keys, ttl_s=settings.api_key_cache_ttl_s)
        self.producer = create_producer(settings)
        self.relay = OutboxRelay(self.sessions, self.producer, batch_size=settings.outbox_batch_size,
                                 poll_interval_s=settings.outbox_poll_interval_s,
                                 linger_s=settings.outbox_linger_ms / 1000)
        # Units of work for routes and workers, and for the consumer's batches; both wake the relay when
        # they wrote events. A worker that waits for consumed work (the channels dispatcher) listens to
        # consumer_units.after_commit: listening to its own commits would wake it forever.
        self.units = UnitOfWorkFactory(self.sessions, source=settings.spec.source, on_events=[self.relay.wake])
        self.consumer_units = UnitOfWorkFactory(self.sessions, source=settings.spec.source,
                                                on_events=[self.relay.wake])
        self.consumer: ConsumerRunner | None = None
        self._consumer_start: asyncio.Task[None] | None = None
        self._consumer_error: str | None = None
        self._background: list[asyncio.Task[None]] = []
        self.stopping = asyncio.Event()

    async def start(self, handlers: dict[str, Handler], loops: Sequence[Worker] = ()) -> None:
        """Start the producer, the relay, the consumer (if the service has handlers) and the workers.

        The consumer joins its group in the background: joining can take seconds (a rebalance), and the
        service answers HTTP meanwhile, reporting ``consumer: starting`` on /readyz until it runs.
        """
        await _with_startup_retries("Kafka", self.producer.start, self.settings.startup_timeout_s)
        self.relay.start()
        if handlers:
            self.consumer = ConsumerRunner(config=ConsumerConfig.from_settings(self.settings), handlers=handlers,
                                           units=self.consumer_units, producer=self.producer)
            self._consumer_start = asyncio.create_task(self._start_consumer(self.consumer), name="consumer-start")
        self._background = [asyncio.create_task(loop(self), name=loop.__name__) for loop in loops]

    async def _start_consumer(self, consumer: ConsumerRunner) -> None:
        try:
            await _with_startup_retries("Kafka consumer group", consumer.start, self.settings.startup_timeout_s)
        except Exception as exc:
            self._consumer_error = str(exc)
            metrics.CONSUMER_HALTED.labels(consumer.group).set(1)
            log.critical("consumer could not start", extra={"group": consumer.group, "error": str(exc)})

    def consumer_state(self) -> str:
        """``ok``, ``starting``, ``retrying: <what>`` (an outage it is waiting out: not ready, but alive),
        ``halted: <reason>``, or ``none`` for a service without a consumer."""
        if self.consumer is None:
            return "none"
        if self.consumer.running:
            return f"retrying: {self.consumer.degraded}" if self.consumer.degraded else "ok"
        reason = self._consumer_error or self.consumer.halted_reason
        if reason is None and self._consumer_start is not None and not self._consumer_start.done():
            return "starting"
        return f"halted: {reason or 'stopped'}"

    @property
    def alive(self) -> bool:
        """False once the consumer halted or could not start: a restart is what cures it (liveness)."""
        return not self.consumer_state().startswith("halted")

    async def stop(self) -> None:
        """Drain in order: consumers, background loops, outbox, producer, database."""
        self.stopping.set()
        if self._consumer_start is not None and not self._consumer_start.done():
            self._consumer_start.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._consumer_start
        if self.consumer is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):  # a halted consumer's task ended badly
                await self.consumer.stop(self.settings.shutdown_timeout_s)
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.relay.stop()
        await self.producer.stop()
        await self.engine.dispose()

    async def readiness(self) -> dict[str, str]:
        """Each dependency's state: database, Kafka, and the consumer (running or halted)."""
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
            checks["consumer"] = self.consumer_state()
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

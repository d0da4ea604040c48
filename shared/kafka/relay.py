"""Outbox relay: publishes committed outbox rows, deleting them only after the broker acked.

Rows are claimed with ``FOR UPDATE SKIP LOCKED``; the row lock held by the open transaction is
the lease, so several replicas never publish the same row concurrently, and a crash releases it.
A crash after the ack and before the delete republishes the batch: consumers dedupe by event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import metrics
from shared.messaging import OutboxEntry

log = logging.getLogger(__name__)
# One lock per service: the services share a database, each in its own schema.
RELAY_LOCK = func.pg_try_advisory_xact_lock(func.hashtext("outbox:" + func.current_schema()))


class OutboxRelay:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], producer: AIOKafkaProducer, *,
                 batch_size: int = 1000, poll_interval_s: float = 0.2, gauge_interval_s: float = 5.0,
                 linger_s: float = 0.0) -> None:
        self._sessions = sessions
        self._producer = producer
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._gauge_interval_s = gauge_interval_s
        self._linger_s = linger_s
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    def wake(self) -> None:
        """Called after a handler commits: publish now instead of at the next poll."""
        self._wakeup.set()

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(), name="outbox-relay"),
                       asyncio.create_task(self._gauges(), name="outbox-gauges")]

    async def stop(self) -> None:
        """Publish what is committed, then stop."""
        self._stopping = True
        self._wakeup.set()
        for task in self._tasks:
            if task.get_name() == "outbox-gauges":
                task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            while await self.publish_once():
                pass
        except Exception:
            log.warning("final outbox flush failed; the rows stay for the next start", exc_info=True)

    async def publish_once(self) -> int:
        """Publish up to one batch; returns how many rows were published."""
        async with self._sessions() as session, session.begin():
            # One publisher per service at a time keeps per-key order across replicas; the others
            # find the lock taken and try again at their next wake-up or poll.
            if not (await session.execute(select(RELAY_LOCK))).scalar():
                return 0
            rows = (await session.execute(
                select(OutboxEntry.id, OutboxEntry.topic, OutboxEntry.key, OutboxEntry.value)
                .order_by(OutboxEntry.id)  # type: ignore[arg-type]
                .limit(self._batch_size)
                .with_for_update(skip_locked=True)
            )).all()
            if not rows:
                return 0
            futures = [await self._producer.send(r.topic, value=r.value, key=r.key) for r in rows]
            await asyncio.gather(*futures)
            await session.execute(delete(OutboxEntry).where(OutboxEntry.id.in_([r.id for r in rows])))  # type: ignore[union-attr]
        for r in rows:
            metrics.OUTBOX_PUBLISHED.labels(r.topic).inc()
        return len(rows)

    async def _run(self) -> None:
        backoff = 0.5
        while not self._stopping:
            # Clear before publishing: a wake() that arrives during the publish is not lost.
            self._wakeup.clear()
            try:
                published = await self.publish_once()
                backoff = 0.5
            except Exception:
                log.exception("outbox relay failed; retrying", extra={"backoff_s": backoff})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if published < self._batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self._poll_interval_s)
                if self._linger_s:
                    await asyncio.sleep(self._linger_s)  # let concurrent commits join this publish

    async def _gauges(self) -> None:
        while True:
            try:
                async with self._sessions() as session:
                    count, oldest = (await session.execute(
                        select(func.count(), func.min(OutboxEntry.created_at)))).one()
                metrics.OUTBOX_BACKLOG.set(count)
                metrics.OUTBOX_OLDEST_AGE.set(
                    (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0)
            except Exception:
                log.warning("could not read outbox gauges", exc_info=True)
            await asyncio.sleep(self._gauge_interval_s)

"""Consumer runner: a batch per poll, one DB transaction per batch, commit offsets last.

Semantics (after getsentry/arroyo and pyeventsourcing):
* the inbox rows ``(group, event id)`` and the handlers' state changes commit in one transaction,
  then offsets are committed: at-least-once transport, exactly-once effect;
* transient errors (database or broker unreachable, serialization failures) are retried with
  exponential backoff, a bounded number of times, then the consumer halts: it never skips;
* a message that cannot be parsed, or whose handler fails for a non-transient reason when run on
  its own, goes to ``<group>.dlq`` with its origin and the error in headers; the DLQ write is
  acknowledged before the offset commit. Too many in a row halts the consumer (a bad deploy
  must not dead-letter the whole topic);
* stop() drains: the batch in hand finishes and commits, then the consumer leaves the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaConnectionError, KafkaTimeoutError
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import metrics
from shared.contracts import BY_NAME, CloudEvent, dlq_topic
from shared.logging import event_id_var, tenant_var
from shared.messaging import claim_inbox

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One consumed event: envelope, validated payload and where it came from."""

    event: CloudEvent
    payload: Any
    record: ConsumerRecord[bytes, bytes]

    @property
    def topic(self) -> str:
        return self.record.topic


Handler = Callable[[AsyncSession, list[Delivery]], Awaitable[None]]

_TRANSIENT_SQLSTATES = {"40001", "40P01", "57P01", "57P03", "08000", "08003", "08006", "53300"}


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying: the infrastructure, not the message, is at fault."""
    if isinstance(exc, (OSError, TimeoutError, KafkaConnectionError, KafkaTimeoutError,
                        OperationalError, InterfaceError)):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(getattr(exc.orig, "__cause__", None),
                                                                    "sqlstate", None)
        return sqlstate in _TRANSIENT_SQLSTATES
    return False


class ConsumerHalted(RuntimeError):
    """The consumer stopped itself; the service reports not ready until restarted."""


class PoisonMessage(Exception):
    def __init__(self, record: ConsumerRecord[bytes, bytes], error: str) -> None:
        super().__init__(error)
        self.record = record
        self.error = error


def parse_record(record: ConsumerRecord[bytes, bytes]) -> Delivery:
    """Validate envelope and payload; raises PoisonMessage when the message itself is bad."""
    topic = BY_NAME.get(record.topic)
    if topic is None:
        raise PoisonMessage(record, f"no contract for topic {record.topic}")
    try:
        event = CloudEvent.from_bytes(record.value or b"")
        if event.type != topic.event_type:
            raise PoisonMessage(record, f"event type {event.type!r} does not belong on {record.topic}")
        payload: BaseModel = topic.payload.model_validate(event.data)
    except ValidationError as exc:
        raise PoisonMessage(record, _validation_summary(exc)) from exc
    if _payload_tenant(payload, event.tenant) != event.tenant:
        raise PoisonMessage(record, "payload tenant differs from envelope tenant")
    return Delivery(event, payload, record)


def _payload_tenant(payload: BaseModel, default: str) -> str:
    """The tenant a payload speaks for (top level, or inside a wrapped request)."""
    for holder in (payload, getattr(payload, "request", None)):
        tenant = getattr(holder, "tenant", None)
        if tenant is not None:
            return str(tenant)
    return default


def _validation_summary(exc: ValidationError) -> str:
    """Where and why validation failed, never the offending values (they may be plaintext PII)."""
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
             for e in exc.errors(include_input=False, include_url=False)]
    return f"{exc.error_count()} validation error(s) for {exc.title}: " + "; ".join(parts)[:900]


def _short(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        return _validation_summary(exc)
    return str(exc).replace("\n", " ")[:1000]


class ConsumerRunner:
    def __init__(
        self, *, group: str, bootstrap_servers: str, handlers: dict[str, Handler],
        sessions: async_sessionmaker[AsyncSession], producer: AIOKafkaProducer,
        on_commit: Callable[[], None] = lambda: None, fetch_max_wait_ms: int = 20, max_batch: int = 500,
        max_transient_retries: int = 5, dlq_max_consecutive: int = 50, backoff_base_s: float = 0.2,
        session_timeout_ms: int = 10_000, rebalance_timeout_ms: int = 3_000, linger_ms: int = 0,
    ) -> None:
        self.group = group
        self._handlers = handlers
        self._sessions = sessions
        self._producer = producer
        self._on_commit = on_commit
        self._max_batch = max_batch
        self._max_retries = max_transient_retries
        self._dlq_max_consecutive = dlq_max_consecutive
        self._backoff_base_s = backoff_base_s
        self._consecutive_dlq = 0
        self._linger_s = linger_ms / 1000
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self.halted_reason: str | None = None
        self._consumer = AIOKafkaConsumer(
            *handlers, bootstrap_servers=bootstrap_servers, group_id=group, client_id=group,
            enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=fetch_max_wait_ms,
            max_poll_interval_ms=300_000, session_timeout_ms=session_timeout_ms,
            rebalance_timeout_ms=rebalance_timeout_ms, heartbeat_interval_ms=1_000,
        )

    async def start(self) -> None:
        await self._consumer.start()
        metrics.CONSUMER_HALTED.labels(self.group).set(0)
        self._task = asyncio.create_task(self._run(), name=f"consumer-{self.group}")

    async def stop(self, timeout_s: float = 20.0) -> None:
        """Graceful drain: finish and commit the batch in hand, then leave the group."""
        self._stopping = True
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
            except TimeoutError:
                log.error("consumer did not drain in time; cancelling", extra={"group": self.group})
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
            except Exception:
                log.debug("consumer task ended with an error (logged by _run)")
        await self._consumer.stop()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        try:
            while not self._stopping:
                batch = await self._fetch()
                if batch:
                    await self.process(batch)
        except ConsumerHalted as exc:
            self.halted_reason = str(exc)
            metrics.CONSUMER_HALTED.labels(self.group).set(1)
            log.critical("consumer halted", extra={"group": self.group, "reason": str(exc)})
            await self._leave_group()
            raise
        except Exception as exc:
            self.halted_reason = f"unexpected error: {exc!r}"
            metrics.CONSUMER_HALTED.labels(self.group).set(1)
            log.critical("consumer crashed", exc_info=True, extra={"group": self.group})
            await self._leave_group()
            raise

    async def _leave_group(self) -> None:
        """A halted consumer gives its partitions back to the other replicas at once."""
        try:
            await self._consumer.stop()
        except Exception:
            log.warning("could not leave the consumer group cleanly", exc_info=True)

    async def _fetch(self) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        """A batch; when it is small, linger briefly for more. Per-batch costs (a transaction, the
        commits, the relay's publish) dominate tiny batches, so under load this raises throughput
        several times for a few milliseconds of latency (docs/benchmarks.md)."""
        batch = await self._consumer.getmany(timeout_ms=200, max_records=self._max_batch)
        count = sum(len(records) for records in batch.values())
        if not count or self._linger_s <= 0 or count >= self._max_batch // 2:
            return batch
        await asyncio.sleep(self._linger_s)
        more = await self._consumer.getmany(timeout_ms=0, max_records=self._max_batch - count)
        for tp, records in more.items():
            batch.setdefault(tp, []).extend(records)
        return batch

    async def process(self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        """Handle one fetched batch end to end, then commit its offsets."""
        deliveries: list[Delivery] = []
        for records in batch.values():
            for record in records:
                try:
                    deliveries.append(parse_record(record))
                except PoisonMessage as poison:
                    await self._dead_letter(poison.record, poison.error)
        if deliveries:
            await self._handle_with_fallback(deliveries)
        await self._commit({tp: records[-1].offset + 1 for tp, records in batch.items() if records})
        self._update_lag(batch)

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        for attempt in range(self._max_retries + 1):
            # Partitions lost in a rebalance cannot be committed: their new owner will see the
            # events again and the inbox makes that harmless.
            owned = {tp: offset for tp, offset in offsets.items() if tp in self._consumer.assignment()}
            if not owned:
                return
            try:
                await self._consumer.commit(owned)
                return
            except (CommitFailedError, IllegalStateError) as exc:
                log.warning("offset commit refused after a rebalance; the new owner redelivers",
                            extra={"group": self.group, "error": repr(exc)})
                return
            except Exception as exc:
                # A failed commit only means redelivery; the inbox makes that harmless.
                if attempt == self._max_retries:
                    raise ConsumerHalted(f"offset commit failed: {exc!r}") from exc
                await asyncio.sleep(self._backoff_base_s * 2**attempt)

    async def _handle_with_fallback(self, deliveries: list[Delivery]) -> None:
        try:
            await self._with_retries(deliveries)
            self._consecutive_dlq = 0
            return
        except ConsumerHalted:
            raise
        except Exception as exc:
            if len(deliveries) == 1:
                await self._dead_letter(deliveries[0].record, f"{type(exc).__name__}: {_short(exc)}")
                return
            log.warning("batch failed; retrying its events one by one", exc_info=True,
                        extra={"group": self.group, "size": len(deliveries)})
        for delivery in deliveries:
            try:
                await self._with_retries([delivery])
                self._consecutive_dlq = 0
            except ConsumerHalted:
                raise
            except Exception as exc:
                await self._dead_letter(delivery.record, f"{type(exc).__name__}: {_short(exc)}")

    async def _with_retries(self, deliveries: list[Delivery]) -> None:
        for attempt in range(self._max_retries + 1):
            try:
                await self._handle(deliveries)
                return
            except Exception as exc:
                for d in deliveries:
                    metrics.EVENTS_FAILED.labels(self.group, d.topic).inc()
                if not is_transient(exc):
                    raise
                if attempt == self._max_retries:
                    raise ConsumerHalted(f"transient error persisted after {attempt + 1} tries: {exc!r}") from exc
                delay = self._backoff_base_s * 2**attempt
                log.warning("transient error; retrying", extra={"group": self.group, "delay_s": delay,
                                                                "error": repr(exc)})
                await asyncio.sleep(delay)

    async def _handle(self, deliveries: list[Delivery]) -> None:
        started = time.perf_counter()
        by_topic: dict[str, list[Delivery]] = {}
        async with self._sessions() as session, session.begin():
            fresh_ids = await claim_inbox(session, self.group, [d.event.id for d in deliveries])
            seen: set[str] = set()
            for d in deliveries:
                if d.event.id in fresh_ids and d.event.id not in seen:
                    seen.add(d.event.id)
                    by_topic.setdefault(d.topic, []).append(d)
                else:
                    metrics.EVENTS_DUPLICATE.labels(self.group, d.topic).inc()
            for topic, items in by_topic.items():
                if len(items) == 1:
                    event_id_var.set(items[0].event.id)
                    tenant_var.set(items[0].event.tenant)
                await self._handlers[topic](session, items)
        elapsed = time.perf_counter() - started
        for topic, items in by_topic.items():
            metrics.EVENTS_CONSUMED.labels(self.group, topic).inc(len(items))
            metrics.HANDLER_LATENCY.labels(self.group, topic).observe(elapsed)
        event_id_var.set(None)
        tenant_var.set(None)
        self._on_commit()

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], error: str) -> None:
        self._consecutive_dlq += 1
        if self._consecutive_dlq > self._dlq_max_consecutive:
            raise ConsumerHalted(
                f"{self._consecutive_dlq} consecutive poison messages (limit {self._dlq_max_consecutive}); "
                f"last at {record.topic}/{record.partition}@{record.offset}: {error}")
        headers = [
            ("dlq.group", self.group.encode()),
            ("dlq.origin.topic", record.topic.encode()),
            ("dlq.origin.partition", str(record.partition).encode()),
            ("dlq.origin.offset", str(record.offset).encode()),
            ("dlq.error", error.encode()[:4000]),
            ("dlq.time", str(int(time.time() * 1000)).encode()),
        ]
        await self._producer.send_and_wait(dlq_topic(self.group), value=record.value, key=record.key,
                                           headers=headers)
        metrics.EVENTS_DEAD_LETTERED.labels(self.group, record.topic).inc()
        log.error("event dead-lettered", extra={"group": self.group, "topic": record.topic,
                                                "partition": record.partition, "offset": record.offset,
                                                "error": error})

    def _update_lag(self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        for tp, records in batch.items():
            highwater = self._consumer.highwater(tp)
            if highwater is not None and records:
                metrics.CONSUMER_LAG.labels(self.group, tp.topic, str(tp.partition)).set(
                    max(highwater - records[-1].offset - 1, 0))


"""Consumer runner: a batch per poll, one DB transaction per batch, commit offsets last.

Semantics (after getsentry/arroyo and pyeventsourcing):
* the inbox rows ``(group, event id)`` and the handlers' state changes commit in one transaction,
  then offsets are committed: at-least-once transport, exactly-once effect;
* transient errors (database or broker unreachable, serialization failures) are retried with
  exponential backoff, a bounded number of times, then the consumer halts: it never skips;
* a message that cannot be parsed, or whose handler fails for a non-transient reason when run on
  its own, goes to ``<group>.dlq`` with its origin and the error in headers; the DLQ write is
  acknowledged before the offset commit (a failed write is retried like a transient error, then the
  consumer halts);
* dead letters are limited **per partition** (:class:`DlqLimiter`, after arroyo's ``DlqLimit``): the
  consumer halts instead of dead-lettering a message when, on that message's partition,

  - more than ``dlq_max_consecutive`` messages in a row would be dead-lettered (a message handled
    successfully resets the count), or
  - once at least ``dlq_ratio_min_messages`` messages were seen on the partition since the consumer
    started, more than ``dlq_max_invalid_ratio`` of them (dead letters / messages seen) would be dead
    letters (``None`` or 0 disables the ratio).

  A bad deploy or a broken producer must not dead-letter a whole topic. The message that trips a
  limit is not dead-lettered and no offset of its batch is committed: after the fix and a restart the
  batch is consumed again (the inbox skips what was handled). Counts live in memory and start from
  zero when the consumer starts; a batch's outcomes are counted in offset order within each partition;
* stop() drains: the batch in hand finishes and commits, then the consumer leaves the group. It is
  checked between polls, so an idle consumer notices it within ``poll_timeout_ms``;
* metrics: ``consumer_lag`` per assigned partition (the last known high watermark, from the fetch
  responses, minus the offset this consumer committed: local state, no broker round trip; set after each
  batch for its partitions and refreshed for all at most every ``LAG_INTERVAL_S`` between polls),
  ``consumer_retrying`` while a transient error outlasts the quiet retries, ``consumer_halted`` once it
  stopped itself.

Everything tunable is in :class:`ConsumerConfig`, built from the service's settings by
:meth:`ConsumerConfig.from_settings` (docs/operations.md, "Settings").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from pydantic import BaseModel, ValidationError

from shared import metrics
from shared.contracts import BY_NAME, CloudEvent, dlq_topic
from shared.contracts.events import payload_owner
from shared.errors import is_transient
from shared.logging import event_id_var, tenant_var
from shared.messaging import claim_inbox
from shared.settings import ServiceSettings
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)

LAG_INTERVAL_S = 1.0
"""The consumer_lag gauges are refreshed at most this often (between polls, from local state only)."""


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    """Everything that tunes a :class:`ConsumerRunner`. Defaults are the runner's historical ones;
    services build it with :meth:`from_settings` (whose defaults differ only in ``linger_ms``)."""

    group: str
    bootstrap_servers: str
    # Fetching.
    fetch_max_wait_ms: int = 20
    """How long the broker may hold a fetch open waiting for data."""
    max_batch: int = 500
    """Records per batch (one database transaction)."""
    poll_timeout_ms: int = 200
    """How long one poll waits for records; also bounds how quickly stop() is noticed when idle."""
    linger_ms: int = 0
    """When a poll returns fewer than ``max_batch // 2`` records, wait this long and poll once more."""
    # Failure handling.
    max_transient_retries: int = 5
    """Retries of a transient error before the consumer reports itself degraded (not ready); it goes on
    retrying until the fault clears: an outage never halts it."""
    backoff_base_s: float = 0.2
    """Delay before retry ``n`` (from 0) is ``backoff_base_s * 2**n``, at most ``backoff_max_s``."""
    backoff_max_s: float = 30.0
    """The longest wait between two retries of a transient error."""
    dlq_max_consecutive: int = 50
    """Halt when more than this many messages in a row on one partition would be dead-lettered."""
    dlq_max_invalid_ratio: float | None = 0.5
    """Halt when more than this fraction of one partition's messages would be dead-lettered
    (once ``dlq_ratio_min_messages`` were seen on it); ``None`` or 0 disables the check."""
    dlq_ratio_min_messages: int = 100
    """Messages a partition must have seen before the ratio is checked."""
    dlq_max_message_bytes: int = 900_000
    """A poison message larger than this (key + value) is dead-lettered truncated to it, its size in the
    ``dlq.truncated`` header: the producer could not write it whole, and the consumer must not halt."""
    # Group membership.
    session_timeout_ms: int = 10_000
    rebalance_timeout_ms: int = 3_000
    heartbeat_interval_ms: int = 1_000
    max_poll_interval_ms: int = 300_000
    """The longest a batch (handling plus retries) may take before the broker evicts the member."""

    def __post_init__(self) -> None:
        problems = [name for name, ok in (
            ("max_batch must be >= 1", self.max_batch >= 1),
            ("fetch_max_wait_ms, poll_timeout_ms and linger_ms must be >= 0",
             min(self.fetch_max_wait_ms, self.poll_timeout_ms, self.linger_ms) >= 0),
            ("max_transient_retries and dlq_max_consecutive must be >= 0",
             min(self.max_transient_retries, self.dlq_max_consecutive) >= 0),
            ("backoff_base_s must be >= 0", self.backoff_base_s >= 0),
            ("backoff_max_s must be > 0", self.backoff_max_s > 0),
            ("dlq_max_invalid_ratio must be between 0 and 1",
             self.dlq_max_invalid_ratio is None or 0 <= self.dlq_max_invalid_ratio <= 1),
            ("dlq_ratio_min_messages must be >= 1", self.dlq_ratio_min_messages >= 1),
            ("heartbeat_interval_ms must be below session_timeout_ms",
             0 < self.heartbeat_interval_ms < self.session_timeout_ms),
        ) if not ok]
        if problems:
            raise ValueError(f"invalid consumer config for group {self.group!r}: " + "; ".join(problems))

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> ConsumerConfig:
        """The consumer config of the service ``settings`` belong to (its consumer group)."""
        s = settings
        return cls(
            group=s.consumer_group, bootstrap_servers=s.kafka_bootstrap_servers,
            fetch_max_wait_ms=s.kafka_fetch_max_wait_ms, max_batch=s.kafka_max_batch,
            poll_timeout_ms=s.kafka_poll_timeout_ms, linger_ms=s.kafka_consumer_linger_ms,
            max_transient_retries=s.max_transient_retries, backoff_base_s=s.kafka_consumer_backoff_base_s,
            backoff_max_s=s.kafka_consumer_backoff_max_s,
            dlq_max_consecutive=s.dlq_max_consecutive, dlq_max_invalid_ratio=s.dlq_max_invalid_ratio,
            dlq_ratio_min_messages=s.dlq_ratio_min_messages, dlq_max_message_bytes=s.dlq_max_message_bytes,
            session_timeout_ms=s.kafka_session_timeout_ms, rebalance_timeout_ms=s.kafka_rebalance_timeout_ms,
            heartbeat_interval_ms=s.kafka_heartbeat_interval_ms, max_poll_interval_ms=s.kafka_max_poll_interval_ms,
        )


@dataclass(slots=True)
class _PartitionCounts:
    valid: int = 0
    invalid: int = 0
    consecutive_invalid: int = 0


class DlqLimiter:
    """Per-partition dead-letter limits (after getsentry/arroyo's ``DlqLimit`` / ``DlqLimitState``).

    Pure bookkeeping, no I/O: the runner calls :meth:`record_valid` for every message handled
    successfully (a redelivery the inbox skipped included) and :meth:`record_invalid` before
    dead-lettering one; a non-``None`` answer from
    :meth:`record_invalid` is the reason to halt instead. Unlike arroyo, the ratio is dead letters over
    all messages seen on the partition (not over valid ones), so it lies between 0 and 1, and it is
    only checked once ``ratio_min_messages`` were seen, so the first few messages cannot trip it.
    """

    def __init__(self, *, max_consecutive: int | None = 50, max_invalid_ratio: float | None = 0.5,
                 ratio_min_messages: int = 100) -> None:
        self.max_consecutive = max_consecutive
        self.max_invalid_ratio = max_invalid_ratio or None  # 0 disables, as None does
        self.ratio_min_messages = max(ratio_min_messages, 1)
        self._counts: dict[TopicPartition, _PartitionCounts] = {}

    @classmethod
    def from_config(cls, config: ConsumerConfig) -> DlqLimiter:
        return cls(max_consecutive=config.dlq_max_consecutive, max_invalid_ratio=config.dlq_max_invalid_ratio,
                   ratio_min_messages=config.dlq_ratio_min_messages)

    def record_valid(self, tp: TopicPartition, count: int = 1) -> None:
        """``count`` messages of ``tp`` were handled: they count as valid and end any run of dead letters."""
        if count <= 0:
            return
        counts = self._counts.setdefault(tp, _PartitionCounts())
        counts.valid += count
        counts.consecutive_invalid = 0

    def record_invalid(self, tp: TopicPartition) -> str | None:
        """Count a message of ``tp`` that is about to be dead-lettered.

        Returns ``None`` when it may be dead-lettered, or why the consumer must halt instead.
        """
        counts = self._counts.setdefault(tp, _PartitionCounts())
        counts.invalid += 1
        counts.consecutive_invalid += 1
        seen = counts.valid + counts.invalid
        where = f"{tp.topic}/{tp.partition}"
        if self.max_consecutive is not None and counts.consecutive_invalid > self.max_consecutive:
            return (f"{counts.consecutive_invalid} consecutive poison messages on {where} "
                    f"(limit {self.max_consecutive}); {counts.invalid} of {seen} messages seen on it were poison")
        if (self.max_invalid_ratio is not None and seen >= self.ratio_min_messages
                and counts.invalid / seen > self.max_invalid_ratio):
            return (f"{counts.invalid} of {seen} messages on {where} were poison ({counts.invalid / seen:.0%}, "
                    f"limit {self.max_invalid_ratio:.0%} once {self.ratio_min_messages} were seen)")
        return None

    def counts(self, tp: TopicPartition) -> tuple[int, int, int]:
        """``(valid, invalid, consecutive invalid)`` seen on ``tp`` so far."""
        c = self._counts.get(tp, _PartitionCounts())
        return c.valid, c.invalid, c.consecutive_invalid


@dataclass(frozen=True, slots=True)
class Delivery:
    """One consumed event: envelope, validated payload and where it came from."""

    event: CloudEvent
    payload: Any
    record: ConsumerRecord[bytes, bytes]

    @property
    def topic(self) -> str:
        return self.record.topic


Handler = Callable[[UnitOfWork, list[Delivery]], Awaitable[None]]


def idempotent(handler: Handler) -> Handler:
    """Mark a handler whose effect is the same however often (and in whatever order) its events are applied,
    e.g. an upsert where the newest by event time wins: its events skip the inbox, one row less per event.
    Duplicates within a batch are still dropped; nothing is announced twice because such a handler emits nothing."""
    handler.idempotent = True  # type: ignore[attr-defined]
    return handler
"""A topic's handler: the batch's unit of work (not yet committed) and the batch's new deliveries."""

class ConsumerHalted(RuntimeError):
    """The consumer stopped itself; the service reports not ready until restarted."""


class _StopRequested(ConsumerHalted):
    """stop() was called while a transient error was being retried: leave without committing."""


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
    except PoisonMessage:
        raise
    except ValidationError as exc:
        raise PoisonMessage(record, _validation_summary(exc)) from exc
    except Exception as exc:  # whatever a validator raises while parsing, the message is at fault
        raise PoisonMessage(record, f"unparseable: {type(exc).__name__}") from exc
    owner = payload_owner(payload)
    if owner is not None and owner[0] != event.tenant:
        raise PoisonMessage(record, "payload tenant differs from envelope tenant")
    return Delivery(event, payload, record)


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
    def __init__(self, *, config: ConsumerConfig, handlers: dict[str, Handler], units: Callable[[], UnitOfWork],
                 producer: AIOKafkaProducer) -> None:
        self.config = config
        self.group = config.group
        self._handlers = handlers
        self._idempotent = {topic for topic, handler in handlers.items() if getattr(handler, "idempotent", False)}
        self._units = units
        self._producer = producer
        self._limiter = DlqLimiter.from_config(config)
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self.halted_reason: str | None = None
        # Set while a transient error outlasts max_transient_retries (the service reports not ready).
        self.degraded: str | None = None
        self._stop_requested = asyncio.Event()
        # Offsets this consumer committed, per partition it still owns, and the lag series it exports.
        self._committed: dict[TopicPartition, int] = {}
        self._lag_series: set[TopicPartition] = set()
        self._lag_at = 0.0
        self._consumer = AIOKafkaConsumer(
            *handlers, bootstrap_servers=config.bootstrap_servers, group_id=config.group, client_id=config.group,
            enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=config.fetch_max_wait_ms,
            max_poll_interval_ms=config.max_poll_interval_ms, session_timeout_ms=config.session_timeout_ms,
            rebalance_timeout_ms=config.rebalance_timeout_ms, heartbeat_interval_ms=config.heartbeat_interval_ms,
        )

    async def start(self) -> None:
        await self._consumer.start()
        metrics.CONSUMER_HALTED.labels(self.group).set(0)
        metrics.CONSUMER_RETRYING.labels(self.group).set(0)
        self._task = asyncio.create_task(self._run(), name=f"consumer-{self.group}")

    async def stop(self, timeout_s: float = 20.0) -> None:
        """Graceful drain: finish and commit the batch in hand, then leave the group."""
        self._stopping = True
        self._stop_requested.set()  # cut short a backoff in progress
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
        self._clear_lag()
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
                self._update_lag()
        except _StopRequested:
            log.info("stopped during an outage; the batch in hand was not committed", extra={"group": self.group})
        except ConsumerHalted as exc:
            self._halted(str(exc))
            log.critical("consumer halted", extra={"group": self.group, "reason": str(exc)})
            await self._leave_group()
            raise
        except Exception as exc:
            self._halted(f"unexpected error: {exc!r}")
            log.critical("consumer crashed", exc_info=True, extra={"group": self.group})
            await self._leave_group()
            raise

    def _halted(self, reason: str) -> None:
        self.halted_reason = reason
        metrics.CONSUMER_HALTED.labels(self.group).set(1)
        metrics.CONSUMER_RETRYING.labels(self.group).set(0)
        self._clear_lag()  # its partitions move to other replicas, which report their lag

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
        max_batch = self.config.max_batch
        batch = await self._consumer.getmany(timeout_ms=self.config.poll_timeout_ms, max_records=max_batch)
        count = sum(len(records) for records in batch.values())
        if not count or self.config.linger_ms <= 0 or count >= max_batch // 2:
            return batch
        await asyncio.sleep(self.config.linger_ms / 1000)
        more = await self._consumer.getmany(timeout_ms=0, max_records=max_batch - count)
        for tp, records in more.items():
            batch.setdefault(tp, []).extend(records)
        return batch

    async def process(self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        """Handle one fetched batch end to end, then commit its offsets.

        The parseable events are handled in one transaction; if that fails for a non-transient reason
        they are handled one at a time, so one bad event cannot block the rest. Then every record is
        accounted for in offset order within its partition: handled ones count as valid for the DLQ
        limits, the others are dead-lettered (or halt the consumer when a limit is reached).
        """
        items: list[Delivery | PoisonMessage] = []
        for records in batch.values():
            for record in records:
                try:
                    items.append(parse_record(record))
                except PoisonMessage as poison:
                    items.append(poison)
        deliveries = [item for item in items if isinstance(item, Delivery)]
        batch_error = await self._attempt(deliveries) if deliveries else None
        one_by_one = batch_error is not None and len(deliveries) > 1
        if one_by_one:
            log.warning("batch failed; retrying its events one by one", exc_info=batch_error,
                        extra={"group": self.group, "size": len(deliveries)})
        for item in items:
            if isinstance(item, PoisonMessage):
                await self._dead_letter(item.record, item.error)
                continue
            error = await self._attempt([item]) if one_by_one else batch_error
            if error is None:
                self._limiter.record_valid(TopicPartition(item.record.topic, item.record.partition))
            else:
                await self._dead_letter(item.record, f"{type(error).__name__}: {_short(error)}")
        await self._commit({tp: records[-1].offset + 1 for tp, records in batch.items() if records})
        self._report_lag(batch)

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        retries = self.config.max_transient_retries
        attempt = 0
        while True:
            # Partitions lost in a rebalance cannot be committed: their new owner will see the
            # events again and the inbox makes that harmless.
            owned = {tp: offset for tp, offset in offsets.items() if tp in self._consumer.assignment()}
            if not owned:
                return
            try:
                await self._consumer.commit(owned)
            except (CommitFailedError, IllegalStateError) as exc:
                log.warning("offset commit refused after a rebalance; the new owner redelivers",
                            extra={"group": self.group, "error": repr(exc)})
                return
            except Exception as exc:
                # A failed commit only means redelivery; the inbox makes that harmless. An unreachable
                # broker is waited out; another error halts after the retries.
                if not is_transient(exc) and attempt >= retries:
                    raise ConsumerHalted(f"offset commit failed: {exc!r}") from exc
                await self._wait_to_retry("committing offsets", exc, attempt)
                attempt += 1
                continue
            self._committed.update(owned)
            self._recovered()
            return

    async def _attempt(self, deliveries: list[Delivery]) -> Exception | None:
        """Handle ``deliveries`` in one transaction, retrying transient errors; returns the
        non-transient error that made it fail, or ``None`` once it committed."""
        try:
            await self._with_retries(deliveries)
        except ConsumerHalted:
            raise
        except Exception as exc:
            return exc
        return None

    async def _with_retries(self, deliveries: list[Delivery]) -> None:
        """Handle the batch; a transient error is retried with capped backoff until it clears (an outage
        heals, it never halts the consumer); a non-transient one is raised."""
        attempt = 0
        while True:
            try:
                await self._handle(deliveries)
                self._recovered()
                return
            except Exception as exc:
                for d in deliveries:
                    metrics.EVENTS_FAILED.labels(self.group, d.topic).inc()
                if not is_transient(exc):
                    raise
                await self._wait_to_retry("handling a batch", exc, attempt)
                attempt += 1

    async def _wait_to_retry(self, what: str, exc: BaseException, attempt: int) -> None:
        """Back off before retry ``attempt``; report the consumer degraded once the retries it may take
        quietly are spent; leave at once when stop() was called."""
        if self._stopping:
            raise _StopRequested(f"stopping while {what} failed: {exc!r}") from exc
        delay = min(self.config.backoff_base_s * 2**attempt, self.config.backoff_max_s)
        if attempt >= self.config.max_transient_retries and self.degraded is None:
            self.degraded = f"{what}: {type(exc).__name__}; retrying every {self.config.backoff_max_s:g} s at most"
            metrics.CONSUMER_RETRYING.labels(self.group).set(1)
            log.error("transient error persists; retrying until it clears",
                      extra={"group": self.group, "error": repr(exc), "what": what})
        else:
            log.warning("transient error; retrying", extra={"group": self.group, "delay_s": delay,
                                                            "error": repr(exc), "what": what})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_requested.wait(), delay)

    def _recovered(self) -> None:
        if self.degraded is not None:
            log.warning("recovered from a transient error", extra={"group": self.group, "was": self.degraded})
            self.degraded = None
            metrics.CONSUMER_RETRYING.labels(self.group).set(0)

    async def _handle(self, deliveries: list[Delivery]) -> None:
        started = time.perf_counter()
        by_topic: dict[str, list[Delivery]] = {}
        # One unit of work per batch: inbox rows, state changes and emitted events commit together,
        # and the unit of work wakes the relay once they have.
        async with self._units() as uow:
            fresh_ids = await claim_inbox(uow.session, self.group, [
                d.event.id for d in deliveries if d.topic not in self._idempotent])
            fresh_ids |= {d.event.id for d in deliveries if d.topic in self._idempotent}
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
                await self._handlers[topic](uow, items)
            await uow.commit()
        elapsed = time.perf_counter() - started
        for topic, items in by_topic.items():
            metrics.EVENTS_CONSUMED.labels(self.group, topic).inc(len(items))
            metrics.HANDLER_LATENCY.labels(self.group, topic).observe(elapsed)
        event_id_var.set(None)
        tenant_var.set(None)

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], error: str) -> None:
        """Write ``record`` to the group's DLQ, unless that would break a DLQ limit: then halt."""
        reason = self._limiter.record_invalid(TopicPartition(record.topic, record.partition))
        if reason is not None:
            raise ConsumerHalted(f"{reason}; halted before dead-lettering offset {record.offset}: {error}")
        headers = [
            ("dlq.group", self.group.encode()),
            ("dlq.origin.topic", record.topic.encode()),
            ("dlq.origin.partition", str(record.partition).encode()),
            ("dlq.origin.offset", str(record.offset).encode()),
            ("dlq.error", error.encode()[:4000]),
            ("dlq.time", str(int(time.time() * 1000)).encode()),
        ]
        value, key = record.value, record.key
        size = len(value or b"") + len(key or b"")
        if size > self.config.dlq_max_message_bytes:
            key = (key or b"")[:1024] or None
            value = (value or b"")[:max(self.config.dlq_max_message_bytes - len(key or b""), 0)]
            headers.append(("dlq.truncated", str(size).encode()))
        topic = dlq_topic(self.group)
        attempt = 0
        while True:
            try:
                await self._producer.send_and_wait(topic, value=value, key=key, headers=headers)
                break
            except Exception as exc:
                # Without the dead letter the offset must not move on: wait out a transient failure
                # (an unreachable broker), halt on any other.
                if not is_transient(exc):
                    raise ConsumerHalted(f"could not write the dead letter for {record.topic}/{record.partition}"
                                         f"@{record.offset} to {topic} after {attempt + 1} tries: {exc!r}") from exc
                await self._wait_to_retry("writing a dead letter", exc, attempt)
                attempt += 1
        metrics.EVENTS_DEAD_LETTERED.labels(self.group, record.topic).inc()
        log.error("event dead-lettered", extra={"group": self.group, "topic": record.topic,
                                                "partition": record.partition, "offset": record.offset,
                                                "error": error})

    def _update_lag(self, *, force: bool = False) -> None:
        """Refresh ``consumer_lag`` (at most every ``LAG_INTERVAL_S`` unless ``force``): for each assigned
        partition this consumer committed on, the last known high watermark minus that offset. Only local
        state is read (the high watermark comes with every fetch response): no broker round trip. The
        series of partitions no longer assigned are removed, so a replica never reports a partition that
        moved to another one."""
        now = time.monotonic()
        if not force and now - self._lag_at < LAG_INTERVAL_S:
            return
        self._lag_at = now
        assigned = self._consumer.assignment()
        for tp in [tp for tp in self._committed if tp not in assigned]:
            del self._committed[tp]
        for tp in self._lag_series - assigned:
            self._remove_lag_series(tp)
        self._report_lag(self._committed)

    def _report_lag(self, partitions: Iterable[TopicPartition]) -> None:
        """Set ``consumer_lag`` of those of ``partitions`` this consumer committed on (after a batch: the
        partitions it just committed)."""
        assigned = self._consumer.assignment()
        for tp in partitions:
            committed = self._committed.get(tp)
            if committed is None or tp not in assigned:  # highwater() asserts the partition is assigned
                continue
            highwater = self._consumer.highwater(tp)
            if highwater is None:
                continue
            metrics.CONSUMER_LAG.labels(self.group, tp.topic, str(tp.partition)).set(max(highwater - committed, 0))
            self._lag_series.add(tp)

    def _clear_lag(self) -> None:
        for tp in list(self._lag_series):
            self._remove_lag_series(tp)

    def _remove_lag_series(self, tp: TopicPartition) -> None:
        self._lag_series.discard(tp)
        with contextlib.suppress(KeyError):
            metrics.CONSUMER_LAG.remove(self.group, tp.topic, str(tp.partition))


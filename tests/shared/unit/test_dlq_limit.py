"""Unit tests for the per-partition dead-letter limits: DlqLimiter on its own, then ConsumerRunner.process
with a fake consumer, producer and unit of work (no broker, no database)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

from shared.contracts import message_key, topics
from shared.contracts.events import PaymentReceivedV1
from shared.kafka import consumer as consumer_module
from shared.kafka.consumer import ConsumerConfig, ConsumerHalted, ConsumerRunner, Delivery, DlqLimiter
from shared.messaging import build_event

TOPIC = topics.PAYMENT_RECEIVED.name
P0, P1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)


# --- DlqLimiter -------------------------------------------------------------------------------------------

def test_consecutive_limit_halts_on_the_message_that_exceeds_it() -> None:
    limiter = DlqLimiter(max_consecutive=3, max_invalid_ratio=None)
    assert [limiter.record_invalid(P0) for _ in range(3)] == [None, None, None]
    reason = limiter.record_invalid(P0)
    assert reason is not None
    assert "4 consecutive poison messages" in reason and f"{TOPIC}/0" in reason and "limit 3" in reason


def test_a_valid_message_resets_the_consecutive_count_of_its_partition_only() -> None:
    limiter = DlqLimiter(max_consecutive=2, max_invalid_ratio=None)
    for tp in (P0, P1):
        assert limiter.record_invalid(tp) is None
        assert limiter.record_invalid(tp) is None
    limiter.record_valid(P0)
    assert limiter.counts(P0) == (1, 2, 0)
    assert limiter.record_invalid(P0) is None  # a new run on P0
    assert limiter.record_invalid(P1) is not None  # P1's run goes on: 3 > 2


def test_partitions_are_counted_apart() -> None:
    limiter = DlqLimiter(max_consecutive=2, max_invalid_ratio=None)
    # 2 + 2 in a row overall, but never more than 2 on one partition
    assert [limiter.record_invalid(tp) for tp in (P0, P1, P0, P1)] == [None] * 4
    assert limiter.counts(P0) == limiter.counts(P1) == (0, 2, 2)
    assert limiter.counts(TopicPartition("other", 0)) == (0, 0, 0)


def test_ratio_is_checked_only_once_enough_messages_were_seen() -> None:
    limiter = DlqLimiter(max_consecutive=None, max_invalid_ratio=0.5, ratio_min_messages=10)
    # alternate invalid, invalid, valid: 2/3 invalid, but the ratio waits for 10 messages
    reasons = []
    for _ in range(3):
        reasons += [limiter.record_invalid(P0), limiter.record_invalid(P0)]
        limiter.record_valid(P0)
    assert reasons == [None] * 6  # 9 seen
    reason = limiter.record_invalid(P0)  # 10 seen, 7 invalid: 70% > 50%
    assert reason is not None
    assert "7 of 10 messages" in reason and "70%" in reason and "limit 50%" in reason and f"{TOPIC}/0" in reason


def test_ratio_at_the_limit_does_not_halt() -> None:
    limiter = DlqLimiter(max_consecutive=None, max_invalid_ratio=0.5, ratio_min_messages=4)
    limiter.record_valid(P0, 2)
    assert limiter.record_invalid(P0) is None  # 1 of 3: not enough seen yet
    assert limiter.record_invalid(P0) is None  # 2 of 4 = 50%: not above
    assert limiter.record_invalid(P0) is not None  # 3 of 5


def test_ratio_is_per_partition() -> None:
    limiter = DlqLimiter(max_consecutive=None, max_invalid_ratio=0.5, ratio_min_messages=4)
    limiter.record_valid(P0, 100)
    for _ in range(3):
        assert limiter.record_invalid(P1) is None
    assert limiter.record_invalid(P1) is not None  # P0's valid messages do not dilute P1's ratio


@pytest.mark.parametrize("ratio", [None, 0, 0.0])
def test_a_ratio_of_none_or_zero_disables_it(ratio: float | None) -> None:
    limiter = DlqLimiter(max_consecutive=None, max_invalid_ratio=ratio, ratio_min_messages=1)
    assert all(limiter.record_invalid(P0) is None for _ in range(1_000))


def test_both_limits_at_once_first_one_reached_wins() -> None:
    limiter = DlqLimiter(max_consecutive=5, max_invalid_ratio=0.9, ratio_min_messages=1)
    limiter.record_valid(P0)
    reasons = [limiter.record_invalid(P0) for _ in range(6)]
    assert reasons[:5] == [None] * 5
    assert reasons[5] is not None and "consecutive" in reasons[5]


def test_zero_consecutive_halts_on_the_first_dead_letter() -> None:
    assert DlqLimiter(max_consecutive=0, max_invalid_ratio=None).record_invalid(P0) is not None


def test_from_config() -> None:
    limiter = DlqLimiter.from_config(ConsumerConfig(group="g", bootstrap_servers="b", dlq_max_consecutive=7,
                                                    dlq_max_invalid_ratio=0.25, dlq_ratio_min_messages=40))
    assert (limiter.max_consecutive, limiter.max_invalid_ratio, limiter.ratio_min_messages) == (7, 0.25, 40)


# --- ConsumerRunner.process: the limits see each partition's records in offset order ---------------------

def _valid(partition: int, offset: int, payment_id: str) -> ConsumerRecord[bytes, bytes]:
    payload = PaymentReceivedV1(tenant="t", account_id="A", customer_id="C", payment_id=payment_id,
                                amount_minor=100, currency="CNY", paid_at=datetime.now(UTC))
    event = build_event(topics.PAYMENT_RECEIVED, payload, tenant="t", customer_id="C", source="urn:test")
    return _record(partition, offset, event.to_bytes())


def _poison(partition: int, offset: int) -> ConsumerRecord[bytes, bytes]:
    return _record(partition, offset, b"{not json")


def _record(partition: int, offset: int, value: bytes) -> ConsumerRecord[bytes, bytes]:
    key = message_key("t", "C")
    return ConsumerRecord(TOPIC, partition, offset, 0, 0, key, value, None, len(key), len(value), [])


class _FakeKafkaConsumer:
    def __init__(self) -> None:
        self.committed: list[dict[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return {P0, P1}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed.append(dict(offsets))

    def highwater(self, tp: TopicPartition) -> int | None:
        return None


class _FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []  # (origin partition/offset, error)

    async def send_and_wait(self, topic: str, *, value: bytes | None, key: bytes | None,
                            headers: Sequence[tuple[str, bytes]]) -> None:
        h = dict(headers)
        self.sent.append((f"{h['dlq.origin.partition'].decode()}@{h['dlq.origin.offset'].decode()}",
                          h["dlq.error"].decode()))


class _FakeUow:
    session: Any = None

    async def __aenter__(self) -> _FakeUow:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        return None

    async def commit(self) -> None:
        return None


@pytest.fixture(autouse=True)
def every_event_is_new(monkeypatch: pytest.MonkeyPatch) -> None:
    async def claim(session: Any, group: str, event_ids: Sequence[str]) -> set[str]:
        return set(event_ids)
    monkeypatch.setattr(consumer_module, "claim_inbox", claim)


def _runner(handled: list[str], *, fail: frozenset[str] = frozenset(),
            **limits: Any) -> tuple[ConsumerRunner, _FakeProducer, _FakeKafkaConsumer]:
    async def handler(uow: Any, deliveries: list[Delivery]) -> None:
        for d in deliveries:
            if d.payload.payment_id in fail:
                raise ValueError(f"cannot apply {d.payload.payment_id}")
        handled.extend(d.payload.payment_id for d in deliveries)

    producer, kafka = _FakeProducer(), _FakeKafkaConsumer()
    config = ConsumerConfig(group="unit", bootstrap_servers="127.0.0.1:1", **{"dlq_max_invalid_ratio": None, **limits})
    # Only process() is exercised: the real AIOKafkaConsumer is built (it connects only on start) and replaced.
    runner = ConsumerRunner(config=config, handlers={TOPIC: handler}, units=_FakeUow,  # type: ignore[arg-type]
                            producer=producer)  # type: ignore[arg-type]
    runner._consumer = kafka  # type: ignore[assignment]
    return runner, producer, kafka


async def test_valid_records_between_poison_ones_reset_the_run() -> None:
    handled: list[str] = []
    runner, producer, kafka = _runner(handled, dlq_max_consecutive=1)
    batch = {P0: [_poison(0, 10), _valid(0, 11, "A"), _poison(0, 12), _valid(0, 13, "B"), _poison(0, 14)]}
    await runner.process(batch)  # three dead letters, never two in a row
    assert handled == ["A", "B"]
    assert [origin for origin, _ in producer.sent] == ["0@10", "0@12", "0@14"]
    assert kafka.committed == [{P0: 15}]


async def test_runs_on_different_partitions_do_not_add_up() -> None:
    runner, producer, kafka = _runner([], dlq_max_consecutive=2)
    await runner.process({P0: [_poison(0, 0), _poison(0, 1)], P1: [_poison(1, 0), _poison(1, 1)]})
    assert len(producer.sent) == 4
    assert kafka.committed == [{P0: 2, P1: 2}]


async def test_halts_before_dead_lettering_the_message_over_the_limit_and_commits_nothing() -> None:
    handled: list[str] = []
    runner, producer, kafka = _runner(handled, dlq_max_consecutive=2)
    batch = {P0: [_valid(0, 0, "A"), _poison(0, 1), _poison(0, 2), _poison(0, 3), _valid(0, 4, "B")]}
    with pytest.raises(ConsumerHalted) as halted:
        await runner.process(batch)
    assert [origin for origin, _ in producer.sent] == ["0@1", "0@2"]
    assert kafka.committed == []  # redelivered from offset 0 after a restart (the inbox dedupes A and B)
    message = str(halted.value)
    assert "3 consecutive poison messages" in message and f"{TOPIC}/0" in message and "offset 3" in message


async def test_a_failing_event_is_dead_lettered_alone_and_counted_in_order() -> None:
    handled: list[str] = []
    runner, producer, kafka = _runner(handled, fail=frozenset({"B"}), dlq_max_consecutive=1)
    batch = {P0: [_poison(0, 0), _valid(0, 1, "A"), _valid(0, 2, "B"), _valid(0, 3, "C")]}
    await runner.process(batch)  # the batch fails on B, then A, B, C are tried one by one
    assert handled == ["A", "C"]
    assert [origin for origin, _ in producer.sent] == ["0@0", "0@2"]
    assert "cannot apply B" in producer.sent[1][1]
    assert runner._limiter.counts(P0) == (2, 2, 0)
    assert kafka.committed == [{P0: 4}]


async def test_the_ratio_halts_a_partition_that_is_mostly_poison() -> None:
    runner, producer, _ = _runner([], dlq_max_consecutive=50, dlq_max_invalid_ratio=0.5, dlq_ratio_min_messages=4)
    batch = {P1: [_valid(1, 0, "A"), _poison(1, 1), _poison(1, 2), _valid(1, 3, "B"), _poison(1, 4)]}
    with pytest.raises(ConsumerHalted, match=r"3 of 5 messages on .*/1 were poison \(60%, limit 50%"):
        await runner.process(batch)
    assert [origin for origin, _ in producer.sent] == ["1@1", "1@2"]


class _FlakyProducer(_FakeProducer):
    def __init__(self, failures: list[Exception]) -> None:
        super().__init__()
        self.failures = failures

    async def send_and_wait(self, topic: str, *, value: bytes | None, key: bytes | None,
                            headers: Sequence[tuple[str, bytes]]) -> None:
        if self.failures:
            raise self.failures.pop(0)
        await super().send_and_wait(topic, value=value, key=key, headers=headers)


async def test_a_transient_dead_letter_write_failure_is_retried() -> None:
    runner, _, kafka = _runner([], backoff_base_s=0)
    producer = _FlakyProducer([KafkaTimeoutError(), KafkaConnectionError("down")])
    runner._producer = producer  # type: ignore[assignment]
    await runner.process({P0: [_poison(0, 7)]})
    assert [origin for origin, _ in producer.sent] == ["0@7"]
    assert kafka.committed == [{P0: 8}]


async def test_a_dead_letter_that_cannot_be_written_halts_without_committing() -> None:
    runner, _, kafka = _runner([], backoff_base_s=0, max_transient_retries=2)
    runner._producer = _FlakyProducer([ValueError("message too large")] * 10)  # type: ignore[assignment]
    with pytest.raises(ConsumerHalted, match=rf"could not write the dead letter for {TOPIC}/0@7 to unit.dlq"):
        await runner.process({P0: [_poison(0, 7)]})
    assert kafka.committed == []


async def test_an_unreachable_broker_is_waited_out_for_a_dead_letter_however_long_it_takes() -> None:
    runner, _, kafka = _runner([], backoff_base_s=0, max_transient_retries=2)
    producer = _FlakyProducer([KafkaTimeoutError()] * 10)  # far more failures than max_transient_retries
    runner._producer = producer  # type: ignore[assignment]
    await runner.process({P0: [_poison(0, 7)]})
    assert [origin for origin, _ in producer.sent] == ["0@7"]
    assert kafka.committed == [{P0: 8}]
    assert runner.degraded is None  # recovered


class _OutageUow(_FakeUow):
    """A unit of work whose database is unreachable for the first ``failures`` transactions."""

    failures = 0

    async def commit(self) -> None:
        if _OutageUow.failures > 0:
            _OutageUow.failures -= 1
            raise ConnectionRefusedError(111, "database down")


async def test_a_database_outage_heals_instead_of_halting(monkeypatch: pytest.MonkeyPatch) -> None:
    handled: list[str] = []
    runner, producer, kafka = _runner(handled, backoff_base_s=0, max_transient_retries=3)
    runner._units = _OutageUow  # type: ignore[assignment]
    _OutageUow.failures = 25  # a long outage: far beyond the retries it takes quietly
    states: list[str | None] = []
    real_wait = runner._wait_to_retry

    async def watching(what: str, exc: BaseException, attempt: int) -> None:
        await real_wait(what, exc, attempt)
        states.append(runner.degraded)

    monkeypatch.setattr(runner, "_wait_to_retry", watching)
    await runner.process({P0: [_valid(0, 3, "A")]})
    assert handled[-1] == "A" and producer.sent == []  # handled once the database came back; no dead letter
    assert kafka.committed == [{P0: 4}]
    assert states[:3] == [None, None, None] and states[3] is not None and "ConnectionRefusedError" in states[3]
    assert runner.degraded is None  # recovered: ready again


async def test_stop_during_an_outage_leaves_without_committing() -> None:
    runner, _, kafka = _runner([], backoff_base_s=5, max_transient_retries=0)
    runner._units = _OutageUow  # type: ignore[assignment]
    _OutageUow.failures = 10**6
    task = asyncio.create_task(runner.process({P0: [_valid(0, 3, "A")]}))
    await asyncio.sleep(0.05)
    runner._stopping = True
    runner._stop_requested.set()
    with pytest.raises(consumer_module._StopRequested):
        await asyncio.wait_for(task, 2)  # the 5 s backoff was cut short
    assert kafka.committed == []
    _OutageUow.failures = 0


def test_any_error_while_parsing_is_the_message_s_fault(monkeypatch: pytest.MonkeyPatch) -> None:
    """A validator that raises something other than a validation error (an OSError from the zone
    database, say) must dead-letter the message, not halt the consumer on every restart."""
    def broken(data: Any) -> Any:
        raise IsADirectoryError(21, "Is a directory: '/usr/share/zoneinfo/Asia'")

    monkeypatch.setattr(topics.PAYMENT_RECEIVED.payload, "model_validate", broken)
    with pytest.raises(consumer_module.PoisonMessage, match="unparseable: IsADirectoryError"):
        consumer_module.parse_record(_valid(0, 1, "A"))


async def test_a_poison_message_too_large_to_dead_letter_whole_is_truncated_not_fatal() -> None:
    runner, _, kafka = _runner([], dlq_max_message_bytes=2048)

    class Recording(_FakeProducer):
        async def send_and_wait(self, topic: str, *, value: bytes | None, key: bytes | None,
                                headers: Sequence[tuple[str, bytes]]) -> None:
            self.last = (value, key, dict(headers))
            await super().send_and_wait(topic, value=value, key=key, headers=headers)

    recording = Recording()
    runner._producer = recording  # type: ignore[assignment]
    huge = _record(0, 9, b"{" + b"x" * 5_000_000)  # 5 MB of garbage: more than any producer request
    await runner.process({P0: [huge]})
    value, key, headers = recording.last
    assert len(value or b"") + len(key or b"") <= 2048
    assert headers["dlq.truncated"] == str(5_000_001 + len(huge.key or b"")).encode()
    assert kafka.committed == [{P0: 10}]

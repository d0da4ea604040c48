"""The consumer runner's metrics with a fake consumer, producer and unit of work (no broker, no database):
consumer_lag per assigned partition from local state, consumer_retrying while an outage outlasts the quiet
retries, and what a halt does to both."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from prometheus_client import REGISTRY

from shared.contracts import message_key, topics
from shared.contracts.events import PaymentReceivedV1
from shared.kafka import consumer as consumer_module
from shared.kafka.consumer import ConsumerConfig, ConsumerRunner, Delivery
from shared.messaging import build_event

TOPIC = topics.PAYMENT_RECEIVED.name
P0, P1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)


class _Kafka:
    """The few AIOKafkaConsumer methods the runner uses between polls: all local state."""

    def __init__(self) -> None:
        self.assigned = {P0, P1}
        self.highwaters: dict[TopicPartition, int | None] = {P0: None, P1: None}
        self.committed: list[dict[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def highwater(self, tp: TopicPartition) -> int | None:
        assert tp in self.assigned, "aiokafka asserts the partition is assigned"
        return self.highwaters.get(tp)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed.append(dict(offsets))


class _Producer:
    async def send_and_wait(self, topic: str, *, value: bytes | None, key: bytes | None,
                            headers: Sequence[tuple[str, bytes]]) -> None:
        return None


class _Uow:
    session: Any = None
    failures = 0

    async def __aenter__(self) -> _Uow:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        return None

    async def commit(self) -> None:
        if _Uow.failures > 0:
            _Uow.failures -= 1
            raise ConnectionRefusedError(111, "database down")


@pytest.fixture(autouse=True)
def every_event_is_new(monkeypatch: pytest.MonkeyPatch) -> None:
    async def claim(session: Any, group: str, event_ids: Sequence[str]) -> set[str]:
        return set(event_ids)
    monkeypatch.setattr(consumer_module, "claim_inbox", claim)


def _valid(partition: int, offset: int) -> ConsumerRecord[bytes, bytes]:
    payload = PaymentReceivedV1(tenant="t", account_id="A", customer_id="C", payment_id=f"P{offset}",
                                amount_minor=100, currency="CNY", paid_at=datetime.now(UTC))
    value = build_event(topics.PAYMENT_RECEIVED, payload, tenant="t", customer_id="C", source="urn:test").to_bytes()
    key = message_key("t", "C")
    return ConsumerRecord(TOPIC, partition, offset, 0, 0, key, value, None, len(key), len(value), [])


_groups = iter(range(10**6))


def _runner(**config: Any) -> tuple[ConsumerRunner, _Kafka]:
    async def handler(uow: Any, deliveries: list[Delivery]) -> None:
        return None

    group = f"metrics-{next(_groups)}"  # the registry is global: one group per test
    runner = ConsumerRunner(config=ConsumerConfig(group=group, bootstrap_servers="127.0.0.1:1", **config),
                            handlers={TOPIC: handler}, units=_Uow, producer=_Producer())  # type: ignore[arg-type]
    kafka = _Kafka()
    runner._consumer = kafka  # type: ignore[assignment]
    return runner, kafka


def lag(runner: ConsumerRunner, partition: int) -> float | None:
    return REGISTRY.get_sample_value("consumer_lag", {"group": runner.group, "topic": TOPIC,
                                                      "partition": str(partition)})


def gauge(name: str, runner: ConsumerRunner) -> float | None:
    return REGISTRY.get_sample_value(name, {"group": runner.group})


async def test_lag_is_the_high_watermark_minus_the_committed_offset() -> None:
    runner, kafka = _runner()
    await runner.process({P0: [_valid(0, 10), _valid(0, 11)], P1: [_valid(1, 3)]})
    assert kafka.committed == [{P0: 12, P1: 4}]
    kafka.highwaters = {P0: 20, P1: 4}
    runner._update_lag(force=True)
    assert (lag(runner, 0), lag(runner, 1)) == (8, 0)
    kafka.highwaters[P0] = 25  # events arrived since: a later refresh sees them
    runner._update_lag(force=True)
    assert lag(runner, 0) == 13


async def test_a_partition_without_a_known_high_watermark_or_commit_has_no_series() -> None:
    runner, kafka = _runner()
    kafka.highwaters = {P0: 5, P1: None}
    await runner.process({P1: [_valid(1, 0)]})
    runner._update_lag(force=True)
    assert lag(runner, 0) is None  # nothing committed on it since the start
    assert lag(runner, 1) is None  # no fetch response yet


async def test_lag_is_refreshed_at_most_every_interval_between_polls() -> None:
    runner, kafka = _runner()
    await runner.process({P0: [_valid(0, 0)]})
    kafka.highwaters[P0] = 3
    runner._update_lag()
    assert lag(runner, 0) == 2
    kafka.highwaters[P0] = 9
    runner._update_lag()  # within LAG_INTERVAL_S: not read again
    assert lag(runner, 0) == 2
    runner._lag_at -= consumer_module.LAG_INTERVAL_S
    runner._update_lag()
    assert lag(runner, 0) == 8


async def test_a_partition_lost_in_a_rebalance_stops_being_reported() -> None:
    runner, kafka = _runner()
    await runner.process({P0: [_valid(0, 0)], P1: [_valid(1, 0)]})
    kafka.highwaters = {P0: 50, P1: 60}
    runner._update_lag(force=True)
    assert (lag(runner, 0), lag(runner, 1)) == (49, 59)
    kafka.assigned = {P1}
    runner._update_lag(force=True)
    assert (lag(runner, 0), lag(runner, 1)) == (None, 59)  # its new owner reports it
    kafka.assigned = {P0, P1}  # back again: nothing is reported before this replica commits on it
    runner._update_lag(force=True)
    assert lag(runner, 0) is None


async def test_a_halted_consumer_reports_halted_and_no_lag() -> None:
    runner, kafka = _runner()
    await runner.process({P0: [_valid(0, 0)]})
    kafka.highwaters[P0] = 10
    runner._update_lag(force=True)
    assert lag(runner, 0) == 9
    runner._halted("3 consecutive poison messages")
    assert gauge("consumer_halted", runner) == 1
    assert gauge("consumer_retrying", runner) == 0
    assert lag(runner, 0) is None


async def test_retrying_is_1_while_an_outage_outlasts_the_quiet_retries_then_0(
        monkeypatch: pytest.MonkeyPatch) -> None:
    runner, _ = _runner(backoff_base_s=0, max_transient_retries=2)
    _Uow.failures = 6
    seen: list[float | None] = []
    real_wait = runner._wait_to_retry

    async def watching(what: str, exc: BaseException, attempt: int) -> None:
        await real_wait(what, exc, attempt)
        seen.append(gauge("consumer_retrying", runner))

    monkeypatch.setattr(runner, "_wait_to_retry", watching)
    await runner.process({P0: [_valid(0, 7)]})
    assert seen[:2] == [None, None] and seen[2:] == [1, 1, 1, 1]
    assert gauge("consumer_retrying", runner) == 0 and runner.degraded is None


async def test_a_batch_sets_the_lag_of_its_partitions_at_once_but_never_of_one_lost_meanwhile() -> None:
    runner, kafka = _runner()
    kafka.highwaters = {P0: 30, P1: 40}
    await runner.process({P0: [_valid(0, 10)], P1: [_valid(1, 20)]})
    assert (lag(runner, 0), lag(runner, 1)) == (19, 19)  # no refresh needed: set after the batch
    kafka.assigned = {P1}  # P0 lost in a rebalance while the next batch was handled
    await runner.process({P0: [_valid(0, 11)], P1: [_valid(1, 21)]})
    assert kafka.committed[-1] == {P1: 22}
    assert lag(runner, 1) == 18

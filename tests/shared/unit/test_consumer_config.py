"""Unit tests for ConsumerConfig (shared/kafka/consumer.py): defaults, validation, from_settings."""

from __future__ import annotations

import dataclasses
import inspect
import os

import pytest

from services.scheduler.settings import Settings
from shared.kafka.consumer import ConsumerConfig, ConsumerRunner


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith(("KAFKA_", "SCHEDULER_"))]:
        monkeypatch.delenv(name, raising=False)


def test_defaults_are_the_runners_historical_ones() -> None:
    c = ConsumerConfig(group="g", bootstrap_servers="b:9092")
    assert (c.fetch_max_wait_ms, c.max_batch, c.poll_timeout_ms, c.linger_ms) == (20, 500, 200, 0)
    assert (c.max_transient_retries, c.backoff_base_s) == (5, 0.2)
    assert (c.dlq_max_consecutive, c.dlq_max_invalid_ratio, c.dlq_ratio_min_messages) == (50, 0.5, 100)
    assert (c.session_timeout_ms, c.rebalance_timeout_ms, c.heartbeat_interval_ms,
            c.max_poll_interval_ms) == (10_000, 3_000, 1_000, 300_000)


def test_frozen() -> None:
    c = ConsumerConfig(group="g", bootstrap_servers="b")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.max_batch = 1  # type: ignore[misc]
    assert dataclasses.replace(c, max_batch=1).max_batch == 1


@pytest.mark.parametrize("bad", [{"max_batch": 0}, {"poll_timeout_ms": -1}, {"dlq_max_invalid_ratio": 1.5},
                                 {"dlq_ratio_min_messages": 0}, {"heartbeat_interval_ms": 10_000},
                                 {"backoff_base_s": -0.1}, {"dlq_max_consecutive": -1}])
def test_refuses_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="invalid consumer config for group 'g'"):
        ConsumerConfig(group="g", bootstrap_servers="b", **bad)  # type: ignore[arg-type]


def test_from_settings_defaults() -> None:
    c = ConsumerConfig.from_settings(Settings())
    assert c == ConsumerConfig(group="scheduler", bootstrap_servers="127.0.0.1:59092", linger_ms=20)


def test_from_settings_takes_every_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092", "KAFKA_FETCH_MAX_WAIT_MS": "100", "KAFKA_MAX_BATCH": "50",
        "KAFKA_POLL_TIMEOUT_MS": "1000", "KAFKA_CONSUMER_LINGER_MS": "5", "KAFKA_CONSUMER_BACKOFF_BASE_S": "1.5",
        "KAFKA_SESSION_TIMEOUT_MS": "45000", "KAFKA_REBALANCE_TIMEOUT_MS": "60000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "3000", "KAFKA_MAX_POLL_INTERVAL_MS": "600000",
        "SCHEDULER_MAX_TRANSIENT_RETRIES": "8", "SCHEDULER_DLQ_MAX_CONSECUTIVE": "10",
        "SCHEDULER_DLQ_MAX_INVALID_RATIO": "0.2", "SCHEDULER_DLQ_RATIO_MIN_MESSAGES": "1000",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert ConsumerConfig.from_settings(Settings()) == ConsumerConfig(
        group="scheduler", bootstrap_servers="k1:9092,k2:9092", fetch_max_wait_ms=100, max_batch=50,
        poll_timeout_ms=1000, linger_ms=5, max_transient_retries=8, backoff_base_s=1.5, dlq_max_consecutive=10,
        dlq_max_invalid_ratio=0.2, dlq_ratio_min_messages=1000, session_timeout_ms=45_000,
        rebalance_timeout_ms=60_000, heartbeat_interval_ms=3_000, max_poll_interval_ms=600_000)


def test_every_field_is_set_from_settings() -> None:
    # A field added to ConsumerConfig must be wired in from_settings too.
    source = inspect.getsource(ConsumerConfig.from_settings)
    assert [f.name for f in dataclasses.fields(ConsumerConfig) if f"{f.name}=" not in source] == []


async def test_runner_hands_the_config_to_aiokafka() -> None:
    config = ConsumerConfig(group="g-1", bootstrap_servers="127.0.0.1:1", fetch_max_wait_ms=33,
                            session_timeout_ms=12_000, rebalance_timeout_ms=4_000, heartbeat_interval_ms=2_000,
                            max_poll_interval_ms=120_000)
    runner = ConsumerRunner(config=config, handlers={"some.topic.v1": _no_op}, units=_no_units,  # type: ignore[arg-type]
                            producer=None)  # type: ignore[arg-type]
    kafka = runner._consumer
    assert runner.group == "g-1" and runner.config is config
    assert kafka._group_id == "g-1"
    assert (kafka._session_timeout_ms, kafka._rebalance_timeout_ms, kafka._heartbeat_interval_ms,
            kafka._max_poll_interval_ms) == (12_000, 4_000, 2_000, 120_000)


async def _no_op(*_: object) -> None:
    return None


def _no_units() -> None:
    return None

"""Unit tests: the producer and the outbox relay take their tunables from the settings (nothing connects)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from services.plans.settings import Settings
from shared.kafka import producer as producer_module
from shared.kafka.producer import create_producer
from shared.runtime import Runtime


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith(("KAFKA_", "OUTBOX_", "PLANS_"))]:
        monkeypatch.delenv(name, raising=False)


def _producer_kwargs(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(producer_module, "AIOKafkaProducer", lambda **kwargs: seen.update(kwargs))
    create_producer(Settings())
    return seen


def test_producer_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs = _producer_kwargs(monkeypatch)
    assert (kwargs["linger_ms"], kwargs["request_timeout_ms"], kwargs["acks"]) == (2, 15_000, "all")
    assert kwargs["enable_idempotence"] is False


def test_producer_takes_linger_and_request_timeout_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_PRODUCER_LINGER_MS", "25")
    monkeypatch.setenv("KAFKA_REQUEST_TIMEOUT_MS", "40000")
    kwargs = _producer_kwargs(monkeypatch)
    assert (kwargs["linger_ms"], kwargs["request_timeout_ms"]) == (25, 40_000)


async def test_relay_takes_its_batch_size_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTBOX_BATCH_SIZE", "250")
    runtime = Runtime(Settings())
    try:
        assert runtime.relay._batch_size == 250
    finally:
        await runtime.engine.dispose()

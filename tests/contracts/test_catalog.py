"""docs/events.md is generated from the contracts and must stay in step with them."""

from __future__ import annotations

import copy
import importlib
from types import SimpleNamespace
from typing import Any, cast
from unittest.mock import MagicMock

import pytest
from pydantic import BaseModel, ValidationError

from shared.contracts.envelope import CloudEvent
from shared.contracts.topics import ALL_TOPICS, CONSUMER_GROUPS, Topic, message_key
from shared.crypto import PREFIX, PiiCipher
from shared.kafka.consumer import ConsumerConfig, ConsumerHalted, ConsumerRunner, DlqLimiter, parse_record
from shared.messaging import build_event
from shared.settings import DEV_PII_KEYS
from shared.tools import catalog

TOPIC_IDS = [t.name for t in ALL_TOPICS]


def test_committed_catalogue_is_current() -> None:
    assert catalog.DOC_PATH.exists(), "docs/events.md is missing: run `make docs`"
    committed = catalog.DOC_PATH.read_text(encoding="utf-8")
    assert committed == catalog.render_catalog(), "docs/events.md is out of date: run `make docs`"


def test_render_is_deterministic() -> None:
    assert catalog.render_catalog() == catalog.render_catalog()


def test_check_flag_reports_a_stale_file(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "docs" / "events.md"
    monkeypatch.setattr(catalog, "DOC_PATH", target)
    monkeypatch.setattr(catalog, "ASYNCAPI_PATH", tmp_path / "docs" / "asyncapi.yaml")
    assert catalog.main(["--check"]) == 1  # missing
    assert catalog.main([]) == 0
    assert target.read_text(encoding="utf-8") == catalog.render_catalog()
    assert catalog.main(["--check"]) == 0
    target.write_text("stale\n", encoding="utf-8")
    capsys.readouterr()
    assert catalog.main(["--check"]) == 1
    err = capsys.readouterr().err.strip()
    assert "events.md is out of date" in err and "asyncapi.yaml" not in err
    assert "make docs" in err and "\n" not in err


def test_examples_cover_exactly_the_topics() -> None:
    assert list(catalog.EXAMPLES) == TOPIC_IDS
    assert set(catalog.CONSUMERS) == set(TOPIC_IDS)


@pytest.mark.parametrize("topic", ALL_TOPICS, ids=TOPIC_IDS)
def test_example_validates_against_envelope_and_payload(topic: Topic) -> None:
    example = catalog.EXAMPLES[topic.name]
    event = CloudEvent.model_validate(example)
    assert event.type == topic.event_type
    assert event.dataschema == catalog.dataschema(topic)
    payload = topic.payload.model_validate(event.data)
    assert payload.model_dump(mode="json") == event.data
    catalog.validate_example(topic, example)


@pytest.mark.parametrize("topic", ALL_TOPICS, ids=TOPIC_IDS)
def test_example_is_accepted_by_the_consumer(topic: Topic) -> None:
    """Exactly the checks a consumer runs before a handler sees the event (else: dead letter)."""
    example = catalog.EXAMPLES[topic.name]
    raw = CloudEvent.model_validate(example).to_bytes()
    record = SimpleNamespace(topic=topic.name, partition=0, offset=0, key=b"", value=raw)
    delivery = parse_record(cast(Any, record))
    assert isinstance(delivery.payload, topic.payload)
    assert delivery.event.id == example["id"]


@pytest.mark.parametrize("topic", ALL_TOPICS, ids=TOPIC_IDS)
def test_example_matches_what_our_producers_build(topic: Topic) -> None:
    example = catalog.EXAMPLES[topic.name]
    payload = topic.payload.model_validate(example["data"])
    customer = catalog.customer_of(example["data"])
    built = build_event(topic, payload, tenant=example["tenant"], customer_id=customer,
                        source=example["source"], subject=example["subject"])
    assert built.type == example["type"]
    assert built.dataschema == example["dataschema"]
    assert built.data == example["data"]
    assert set(built.model_dump(exclude_none=True)) <= set(example) | {"causationid", "traceparent"}
    assert message_key(example["tenant"], customer) == f"{example['tenant']}:{customer}".encode()


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def test_sealed_examples_really_are_sealed_for_their_tenant() -> None:
    cipher = PiiCipher(DEV_PII_KEYS, "dev1")
    seen = set()
    for example in catalog.EXAMPLES.values():
        for value in _strings(example["data"]):
            if value.startswith(PREFIX):
                assert cipher.open(value, context=example["tenant"]) == catalog.SEALED_PLAINTEXT[value]
                seen.add(value)
    assert seen == set(catalog.SEALED_PLAINTEXT)


def test_plaintext_pii_is_rejected() -> None:
    example = copy.deepcopy(catalog.EXAMPLES["core.account-overdue.v1"])
    example["data"]["contact"]["phone"] = "+8613800138000"
    topic = next(t for t in ALL_TOPICS if t.name == "core.account-overdue.v1")
    with pytest.raises(ValidationError, match="sealed"):
        topic.payload.model_validate(example["data"])


def _documented_models() -> list[type[BaseModel]]:
    return [t.payload for t in ALL_TOPICS] + [catalog.MODELS[n] for n in catalog.shared_types()]


@pytest.mark.parametrize("model", _documented_models(), ids=lambda m: m.__name__)
def test_every_field_is_described(model: type[BaseModel]) -> None:
    schema = model.model_json_schema()
    missing = [name for name, prop in schema["properties"].items()
               if not catalog.field_description(model, name, prop)]
    assert not missing, f"describe {model.__name__}.{missing} in catalog.FIELD_DOCS"


def test_every_envelope_attribute_is_described() -> None:
    assert set(CloudEvent.model_fields) <= set(catalog.ENVELOPE_DOCS)


def test_nested_models_are_in_shared_types() -> None:
    assert {"CustomerContact", "CoLender", "Instalment"} <= set(catalog.shared_types())
    text = catalog.render_catalog()
    for name in catalog.shared_types():
        assert text.count(f'<a id="type-{name.lower()}"></a>') == 1


def test_consumer_map_matches_the_services_handlers() -> None:
    actual: dict[str, set[str]] = {}
    for group in CONSUMER_GROUPS:
        module = importlib.import_module(f"services.{group}.consumers.handlers")
        for topic in module.build_handlers(MagicMock()):
            actual.setdefault(topic, set()).add(group)
    assert actual == {topic: set(groups) for topic, groups in catalog.CONSUMERS.items()}


class _Producer:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send_and_wait(self, topic: str, **kwargs: Any) -> None:
        self.sent.append({"topic": topic, **kwargs})


def _runner(producer: _Producer, limit: int) -> ConsumerRunner:
    runner = ConsumerRunner.__new__(ConsumerRunner)  # no broker: only the dead-letter path is exercised
    runner.group = "scheduler"
    runner.config = ConsumerConfig(group="scheduler", bootstrap_servers="127.0.0.1:1")
    runner._producer = cast(Any, producer)
    runner._limiter = DlqLimiter(max_consecutive=limit, max_invalid_ratio=None)
    return runner


async def test_dlq_headers_match_the_consumer_runner() -> None:
    producer = _Producer()
    record = SimpleNamespace(topic="plans.plan-event.v1", partition=3, offset=41, key=b"tenant-a:C-1",
                             value=b"{}")
    await _runner(producer, limit=50)._dead_letter(cast(Any, record), "boom")
    (sent,) = producer.sent
    assert sent["topic"] == "scheduler.dlq"
    assert sent["key"] == record.key and sent["value"] == record.value
    assert [name for name, _ in sent["headers"]] == list(catalog.DLQ_HEADERS)
    headers = dict(sent["headers"])
    assert headers["dlq.origin.partition"] == b"3" and headers["dlq.origin.offset"] == b"41"


async def test_too_many_dead_letters_in_a_row_halt_the_consumer() -> None:
    producer = _Producer()
    runner = _runner(producer, limit=2)
    record = SimpleNamespace(topic="plans.plan-event.v1", partition=0, offset=0, key=b"k", value=b"{}")
    for _ in range(2):
        await runner._dead_letter(cast(Any, record), "bad")
    with pytest.raises(ConsumerHalted):
        await runner._dead_letter(cast(Any, record), "bad")
    assert len(producer.sent) == 2

"""Contract tests: event payloads, the CloudEvents envelope, the topic map and record parsing."""

from __future__ import annotations

import base64
import os
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from shared.contracts import ALL_TOPICS, BY_NAME, CloudEvent, dlq_topic, message_key, new_event_id
from shared.contracts import topics as t
from shared.contracts.events import AccountOverdueV1, Channel, ContactApprovedV1, CustomerContact, Segment
from shared.crypto import PiiCipher
from shared.kafka.consumer import Delivery, PoisonMessage, is_transient, parse_record

TENANT = "tenant-a"
CIPHER = PiiCipher({"k1": base64.b64encode(os.urandom(32)).decode()}, "k1")
NOW = datetime(2026, 5, 12, 8, 30, tzinfo=UTC)


def sealed(text: str) -> str:
    return CIPHER.seal(text, context=TENANT)


def overdue(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "tenant": TENANT, "account_id": "ACC-1", "customer_id": "CUST-1", "product": "credit-card",
        "currency": "CNY", "outstanding_minor": 500000, "overdue_minor": 123456, "days_past_due": 12,
        "due_date": "2026-04-30", "credit_rating": "B", "credit_score": None,
        "contact": {"name": sealed("张三"), "phone": sealed("+8613812345678"),
                    "email": sealed("zhang.san@example.com"), "address": sealed("北京市朝阳区建国路88号"),
                    "time_zone": "Asia/Shanghai", "locale": "zh-CN"},
        "co_lenders": [],
    }
    data.update(overrides)
    return data


def contact(**overrides: Any) -> dict[str, Any]:
    return {**overdue()["contact"], **overrides}


# --- AccountOverdueV1 -------------------------------------------------------------------------------

def test_valid_account_overdue() -> None:
    event = AccountOverdueV1.model_validate(overdue())
    assert event.overdue_minor == 123456
    assert event.due_date == date(2026, 4, 30)
    assert CIPHER.open(event.contact.name, context=TENANT) == "张三"


@pytest.mark.parametrize(("field", "plaintext"), [
    ("name", "张三"), ("phone", "+8613812345678"), ("email", "zhang.san@example.com"),
    ("address", "北京市朝阳区建国路88号"), ("phone", "pii:v1:13812345678"),
])
def test_plaintext_pii_rejected(field: str, plaintext: str) -> None:
    with pytest.raises(ValidationError, match="PII must be sealed"):
        AccountOverdueV1.model_validate(overdue(contact=contact(**{field: plaintext})))


def test_optional_contact_points_may_be_missing() -> None:
    c = CustomerContact.model_validate({"name": sealed("张三")})
    assert (c.phone, c.email, c.address) == (None, None, None)
    assert (c.time_zone, c.locale) == ("Asia/Shanghai", "zh-CN")


@pytest.mark.parametrize(("rating", "score"), [("A", None), (None, 720), ("E", 800)])
def test_rating_or_score_is_enough(rating: str | None, score: int | None) -> None:
    AccountOverdueV1.model_validate(overdue(credit_rating=rating, credit_score=score))


def test_rating_or_score_required() -> None:
    with pytest.raises(ValidationError, match=r"credit_rating .* or credit_score"):
        AccountOverdueV1.model_validate(overdue(credit_rating=None, credit_score=None))


@pytest.mark.parametrize(("rating", "score"), [("F", None), ("a", None), (None, 299), (None, 951)])
def test_rating_and_score_ranges(rating: str | None, score: int | None) -> None:
    with pytest.raises(ValidationError):
        AccountOverdueV1.model_validate(overdue(credit_rating=rating, credit_score=score))


def test_overdue_cannot_exceed_outstanding() -> None:
    AccountOverdueV1.model_validate(overdue(outstanding_minor=1000, overdue_minor=1000))
    with pytest.raises(ValidationError, match="cannot exceed outstanding"):
        AccountOverdueV1.model_validate(overdue(outstanding_minor=1000, overdue_minor=1001))


@pytest.mark.parametrize("currency", ["cny", "CN", "CNYY", "C1Y", ""])
def test_bad_currency(currency: str) -> None:
    with pytest.raises(ValidationError):
        AccountOverdueV1.model_validate(overdue(currency=currency))


@pytest.mark.parametrize("zone", ["Mars/Olympus", "Asia/Beijing", "", "../etc/passwd", "Asia/Shanghai "])
def test_bad_time_zone(zone: str) -> None:
    with pytest.raises(ValidationError, match=r"time zone|time_zone"):
        AccountOverdueV1.model_validate(overdue(contact=contact(time_zone=zone)))


@pytest.mark.parametrize("zone", ["America/New_York", "Europe/London", "UTC"])
def test_good_time_zone(zone: str) -> None:
    assert AccountOverdueV1.model_validate(overdue(contact=contact(time_zone=zone))).contact.time_zone == zone


def test_co_lender_shares() -> None:
    ok = AccountOverdueV1.model_validate(overdue(co_lenders=[{"tenant": "bank-x", "share": "0.7"},
                                                             {"tenant": "fintech-y", "share": "0.3"}]))
    assert sum(c.share for c in ok.co_lenders) == Decimal(1)
    with pytest.raises(ValidationError, match="shares add up to more than 1"):
        AccountOverdueV1.model_validate(overdue(co_lenders=[{"tenant": "bank-x", "share": "0.7"},
                                                            {"tenant": "fintech-y", "share": "0.31"}]))


@pytest.mark.parametrize("share", ["0", "-0.1", "1.01"])
def test_single_co_lender_share_range(share: str) -> None:
    with pytest.raises(ValidationError):
        AccountOverdueV1.model_validate(overdue(co_lenders=[{"tenant": "bank-x", "share": share}]))


@pytest.mark.parametrize("change", [{"overdue_minor": 0}, {"outstanding_minor": -1}, {"days_past_due": -1},
                                    {"tenant": "bad tenant"}, {"account_id": ""}, {"unexpected": 1}])
def test_other_field_rules(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        AccountOverdueV1.model_validate(overdue(**change))


def test_payloads_are_frozen() -> None:
    event = AccountOverdueV1.model_validate(overdue())
    with pytest.raises(ValidationError):
        event.days_past_due = 99  # type: ignore[misc]


# --- CloudEvent -------------------------------------------------------------------------------------

def envelope(topic: t.Topic = t.ACCOUNT_OVERDUE, data: dict[str, Any] | None = None,
             **overrides: Any) -> CloudEvent:
    fields: dict[str, Any] = {"id": new_event_id(), "source": "/core-banking", "type": topic.event_type,
                              "subject": "ACC-1", "time": NOW, "tenant": TENANT,
                              "data": overdue() if data is None else data}
    fields.update(overrides)
    return CloudEvent(**fields)


def test_cloud_event_rejects_naive_time() -> None:
    with pytest.raises(ValidationError, match="UTC offset"):
        envelope(time=datetime(2026, 5, 12, 8, 30))
    raw = orjson.loads(envelope().to_bytes())
    raw["time"] = "2026-05-12T08:30:00"
    with pytest.raises(ValidationError, match="UTC offset"):
        CloudEvent.from_bytes(orjson.dumps(raw))


def test_cloud_event_normalises_time_to_utc() -> None:
    event = envelope(time=datetime(2026, 5, 12, 16, 30, tzinfo=timezone(timedelta(hours=8))))
    assert event.time == NOW
    assert event.time.utcoffset() == timedelta(0)


def test_cloud_event_round_trip() -> None:
    data = overdue()
    event = envelope(data=data, correlationid="corr-1",
                     traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    raw = event.to_bytes()
    again = CloudEvent.from_bytes(raw)
    assert again == event
    assert again.to_bytes() == raw
    decoded = orjson.loads(raw)
    assert decoded["specversion"] == "1.0"
    assert decoded["datacontenttype"] == "application/json"
    assert "causationid" not in decoded  # None fields are left out
    assert AccountOverdueV1.model_validate(again.data) == AccountOverdueV1.model_validate(data)


def test_cloud_event_keeps_extension_attributes() -> None:
    event = envelope(partitionkey="tenant-a:CUST-1")
    assert orjson.loads(event.to_bytes())["partitionkey"] == "tenant-a:CUST-1"
    assert CloudEvent.from_bytes(event.to_bytes()).model_extra == {"partitionkey": "tenant-a:CUST-1"}


@pytest.mark.parametrize("change", [{"specversion": "0.3"}, {"tenant": "tenant a"}, {"tenant": ""},
                                    {"id": ""}, {"datacontenttype": "text/plain"}, {"source": ""}])
def test_cloud_event_field_rules(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        envelope(**change)


def test_new_event_ids_are_unique() -> None:
    assert len({new_event_id() for _ in range(100)}) == 100


# --- topics -----------------------------------------------------------------------------------------

def test_topics_are_unique_and_versioned() -> None:
    names = [topic.name for topic in ALL_TOPICS]
    types = [topic.event_type for topic in ALL_TOPICS]
    assert len(set(names)) == len(names) == 14
    assert len(set(types)) == len(types)
    assert len({topic.payload for topic in ALL_TOPICS}) == len(ALL_TOPICS)
    for topic in ALL_TOPICS:
        assert topic.name.endswith(".v1")
        assert topic.event_type.startswith("com.gentlecollections.")
        assert topic.event_type.endswith(".v1")
        assert topic.description
        assert BY_NAME[topic.name] is topic
    assert set(BY_NAME) == set(names)


def test_message_key_and_dlq() -> None:
    assert message_key("tenant-a", "CUST-1") == b"tenant-a:CUST-1"
    assert message_key("t", "客户1") == "t:客户1".encode()
    assert dlq_topic("scheduler") == "scheduler.dlq"


# --- parse_record / is_transient --------------------------------------------------------------------

def record(topic: str, value: bytes | None, *, offset: int = 7) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic=topic, partition=1, offset=offset, timestamp=1_700_000_000_000,
                          timestamp_type=0, key=message_key(TENANT, "CUST-1"), value=value, checksum=None,
                          serialized_key_size=15, serialized_value_size=len(value or b""), headers=[])


def payment(**overrides: Any) -> dict[str, Any]:
    data = {"tenant": TENANT, "account_id": "ACC-1", "customer_id": "CUST-1", "payment_id": "PAY-1",
            "amount_minor": 5000, "currency": "CNY", "paid_at": "2026-05-12T08:00:00Z"}
    data.update(overrides)
    return data


def approved(request_tenant: str) -> dict[str, Any]:
    return {"decision_id": "DEC-1", "request": {
        "tenant": request_tenant, "contact_id": "C-1", "attempt": 1, "account_id": "ACC-1",
        "customer_id": "CUST-1", "channel": Channel.SMS.value, "treatment_step": "reminder",
        "segment": Segment.STANDARD.value, "days_past_due": 5, "destination": sealed("+8613812345678"),
        "time_zone": "Asia/Shanghai", "locale": "zh-CN", "template_id": "reminder.sms", "currency": "CNY",
        "overdue_minor": 1000, "due_date": "2026-05-07", "requested_at": "2026-05-12T08:00:00Z"}}


def test_parse_good_record() -> None:
    event = envelope(t.PAYMENT_RECEIVED, payment())
    rec = record(t.PAYMENT_RECEIVED.name, event.to_bytes())
    delivery = parse_record(rec)
    assert isinstance(delivery, Delivery)
    assert delivery.event == event
    assert delivery.payload.amount_minor == 5000
    assert delivery.payload.paid_at == datetime(2026, 5, 12, 8, 0, tzinfo=UTC)
    assert delivery.record is rec
    assert delivery.topic == t.PAYMENT_RECEIVED.name


def test_parse_good_account_overdue_record() -> None:
    delivery = parse_record(record(t.ACCOUNT_OVERDUE.name, envelope().to_bytes()))
    assert isinstance(delivery.payload, AccountOverdueV1)


def test_parse_contact_approved_with_matching_tenant() -> None:
    delivery = parse_record(record(t.CONTACT_APPROVED.name,
                                   envelope(t.CONTACT_APPROVED, approved(TENANT)).to_bytes()))
    assert isinstance(delivery.payload, ContactApprovedV1)


@pytest.mark.parametrize("value", [b"{not json", b"", None, b"[]", b'{"id": "x"}'])
def test_bad_json_or_envelope_is_poison(value: bytes | None) -> None:
    rec = record(t.PAYMENT_RECEIVED.name, value)
    with pytest.raises(PoisonMessage) as info:
        parse_record(rec)
    assert info.value.record is rec
    assert info.value.error
    assert "\n" not in info.value.error


def test_wrong_event_type_for_topic_is_poison() -> None:
    rec = record(t.PAYMENT_RECEIVED.name, envelope(t.ACCOUNT_OVERDUE).to_bytes())
    with pytest.raises(PoisonMessage, match=r"does not belong on core\.payment-received\.v1"):
        parse_record(rec)


def test_invalid_payload_is_poison() -> None:
    rec = record(t.PAYMENT_RECEIVED.name, envelope(t.PAYMENT_RECEIVED, payment(amount_minor=0)).to_bytes())
    with pytest.raises(PoisonMessage, match="amount_minor"):
        parse_record(rec)


def test_plaintext_pii_on_the_bus_is_poison() -> None:
    data = overdue(contact=contact(phone="+8613812345678"))
    rec = record(t.ACCOUNT_OVERDUE.name, envelope(data=data).to_bytes())
    with pytest.raises(PoisonMessage, match="must be sealed"):
        parse_record(rec)


def test_payload_tenant_differs_from_envelope_is_poison() -> None:
    rec = record(t.PAYMENT_RECEIVED.name, envelope(t.PAYMENT_RECEIVED, payment(tenant="tenant-b")).to_bytes())
    with pytest.raises(PoisonMessage, match="tenant differs"):
        parse_record(rec)


def test_contact_approved_tenant_differs_from_envelope_is_poison() -> None:
    rec = record(t.CONTACT_APPROVED.name, envelope(t.CONTACT_APPROVED, approved("tenant-b")).to_bytes())
    with pytest.raises(PoisonMessage, match="tenant"):
        parse_record(rec)


def test_unknown_topic_is_poison() -> None:
    rec = record("core.account-overdue.v2", envelope().to_bytes())
    with pytest.raises(PoisonMessage, match=r"no contract for topic core\.account-overdue\.v2"):
        parse_record(rec)


@pytest.mark.parametrize("exc", [OSError("reset"), ConnectionRefusedError(), TimeoutError(),
                                 KafkaConnectionError("down")])
def test_transient_errors(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize("exc", [ValueError("bad"), KeyError("x"), RuntimeError("boom"),
                                 PoisonMessage(record("x", b""), "bad")])
def test_non_transient_errors(exc: BaseException) -> None:
    assert not is_transient(exc)

"""Unit tests for JSON logging and PII masking (shared/logging.py)."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.logging import JsonFormatter, event_id_var, mask_text, mask_value, request_id_var, tenant_var

PROPS = settings(max_examples=200, deadline=None, database=None)
ID_NUMBER = "110101199003074578"
ID_NUMBER_X = "11010119900307457X"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("mail zhang.san@example.com now", "mail z***@example.com now"),
        ("a.b+c@mail.example.cn", "a***@mail.example.cn"),
        ("phone +8613812345678", "phone ***5678"),
        ("phone +86 138 1234 5678.", "phone ***5678."),
        ("call 13812345678 now", "call ***5678 now"),
        ("tel 138-1234-5678", "tel ***5678"),
        ("us +1 415-555-0123", "us ***0123"),
        ("us +14155550123", "us ***0123"),
        (f"id {ID_NUMBER} given", "id ****************** given"),
        (f"id={ID_NUMBER_X}", "id=******************"),
        (f"ID:{ID_NUMBER_X.lower()}", "ID:******************"),
    ],
)
def test_mask_text(text: str, masked: str) -> None:
    assert mask_text(text) == masked


@pytest.mark.parametrize("text", ["due 2026-03-08", "amount 1,234.56 CNY", "DPD 31", "no pii here", "退订"])
def test_mask_text_leaves_ordinary_text_alone(text: str) -> None:
    assert mask_text(text) == text


def test_mask_text_handles_everything_at_once() -> None:
    text = f"customer zhang.san@example.com, +8613812345678, id {ID_NUMBER}"
    masked = mask_text(text)
    assert "zhang.san" not in masked
    assert "13812345678" not in masked
    assert ID_NUMBER not in masked
    assert "19900307" not in masked


@PROPS
@given(digits=st.text(alphabet="0123456789", min_size=10, max_size=10),
       prefix=st.sampled_from(["+86", "+1", ""]), before=st.sampled_from(["", "tel ", "call me on "]))
def test_mask_text_never_leaks_a_phone_number(digits: str, prefix: str, before: str) -> None:
    number = f"1{digits}"
    masked = mask_text(f"{before}{prefix}{number} thanks")
    assert number not in masked
    assert masked.endswith(f"***{number[-4:]} thanks")


@PROPS
@given(local=st.from_regex(r"[a-z][a-z0-9._]{2,15}", fullmatch=True),
       domain=st.from_regex(r"[a-z]{2,10}\.(com|cn|org)", fullmatch=True))
def test_mask_text_never_leaks_an_email_local_part(local: str, domain: str) -> None:
    masked = mask_text(f"to {local}@{domain}")
    assert masked == f"to {local[0]}***@{domain}"


@pytest.mark.parametrize("text", [f"身份证号{ID_NUMBER}", f"身份证号{ID_NUMBER_X}", f"{ID_NUMBER}号"])
def test_id_number_next_to_chinese_text_is_fully_masked(text: str) -> None:
    masked = mask_text(text)
    assert "******************" in masked
    assert not re.search(r"\d{4}", masked)


def test_mask_value_for_structured_fields() -> None:
    assert mask_value("phone", "+8613812345678") == "***5678"
    assert mask_value("to", "+8613812345678") == "***5678"
    assert mask_value("phone", 8613812345678) == "***5678"
    assert mask_value("email", "zhang.san@example.com") == "***"
    assert mask_value("name", "张三") == "***"
    assert mask_value("address", "北京市朝阳区建国路88号") == "***"
    assert mask_value("id_number", ID_NUMBER) == "***"
    assert mask_value("phone", None) is None
    assert mask_value("note", "reach zhang.san@example.com") == "reach z***@example.com"
    assert mask_value("count", 3) == 3


@pytest.fixture
def context_vars() -> Iterator[None]:
    tokens = [request_id_var.set("req-123"), event_id_var.set("evt-456"), tenant_var.set("tenant-a")]
    yield
    for var, token in zip((request_id_var, event_id_var, tenant_var), tokens, strict=True):
        var.reset(token)


def make_record(msg: str, *args: object, extra: dict[str, object] | None = None,
                exc_info: object = None) -> logging.LogRecord:
    logger = logging.getLogger("tests.unit.logging")
    return logger.makeRecord(logger.name, logging.WARNING, __file__, 1, msg, args, exc_info,  # type: ignore[arg-type]
                             extra=extra)


def test_json_formatter_emits_one_object_with_context(context_vars: None) -> None:
    line = JsonFormatter("plans").format(make_record("payment %s applied", "P-1", extra={"plan_id": "PL-9"}))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["request_id"] == "req-123"
    assert entry["event_id"] == "evt-456"
    assert entry["tenant"] == "tenant-a"
    assert entry["service"] == "plans"
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "tests.unit.logging"
    assert entry["msg"] == "payment P-1 applied"
    assert entry["plan_id"] == "PL-9"
    assert entry["ts"].endswith("+00:00")


def test_json_formatter_without_context_omits_ids() -> None:
    entry = json.loads(JsonFormatter("plans").format(make_record("hello")))
    assert "request_id" not in entry and "event_id" not in entry and "tenant" not in entry


def test_json_formatter_masks_pii(context_vars: None) -> None:
    record = make_record(
        "sent to %s, id %s", "+8613812345678", ID_NUMBER,
        extra={"phone": "+8613812345678", "email": "zhang.san@example.com",
               "address": "北京市朝阳区建国路88号", "to": "+14155550123",
               "detail": "bounced for li.si@example.org"})
    line = JsonFormatter("channels").format(record)
    entry = json.loads(line)
    assert entry["phone"] == "***5678"
    assert entry["email"] == "***"
    assert entry["address"] == "***"
    assert entry["to"] == "***0123"
    assert entry["detail"] == "bounced for l***@example.org"
    assert entry["msg"] == "sent to ***5678, id ******************"
    for secret in ("13812345678", "4155550123", "zhang.san", "建国路", "li.si", ID_NUMBER):
        assert secret not in line


def test_json_formatter_masks_exceptions() -> None:
    try:
        raise ValueError("cannot reach +8613812345678")
    except ValueError:
        record = make_record("send failed", exc_info=sys.exc_info())
    line = JsonFormatter("channels").format(record)
    entry = json.loads(line)
    assert "ValueError" in entry["exc"]
    assert "***5678" in entry["exc"]
    assert "13812345678" not in line


def test_numbers_next_to_chinese_text_are_masked_but_uuids_are_not() -> None:
    from shared.logging import mask_text

    masked = mask_text("手机13812345678号 id dd71fcc8-82b5-4e3e-8641-b29359aaae29")
    assert "13812345678" not in masked and "***5678" in masked
    assert "dd71fcc8-82b5-4e3e-8641-b29359aaae29" in masked

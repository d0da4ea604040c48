"""Unit tests for customers' replies (services/channels/domain/inbound.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.channels.domain.inbound import KEYWORDS, confirmation_text, opt_out_keyword


@pytest.mark.parametrize(("reply", "keyword"), [
    ("TD", "TD"), ("td", "TD"), (" Td ", "TD"), ("ＴＤ", "TD"), ("回复TD", "TD"), ("TD退订", "TD"), ("T", "T"),
    ("退订", "退订"), ("退订。", "退订"), ("请退订", "退订"), ("取消", "取消"), ("STOP", "STOP"), ("Stop.", "STOP"),
    ("stop please", "STOP"), ("UNSUBSCRIBE", "UNSUBSCRIBE"), ("unsubscribe!", "UNSUBSCRIBE"), ("STOPALL", "STOPALL"),
    ("Cancel", "CANCEL"), ("quit", "QUIT"), ("T D", "TD"),
])
def test_opt_out_replies_and_their_close_variants(reply: str, keyword: str) -> None:
    assert opt_out_keyword(reply) == keyword


@pytest.mark.parametrize("reply", [
    "我明天还款", "好的", "stop calling me or I will sue", "totally fine", "Can I pay next week?", "", "   ",
    "TD" * 100, "还款计划怎么申请", "don't stop",
])
def test_other_replies_are_not_opt_outs(reply: str) -> None:
    assert opt_out_keyword(reply) is None


@settings(max_examples=300, deadline=None, database=None)
@given(st.text(max_size=200))
def test_any_reply_is_a_known_keyword_or_none(reply: str) -> None:
    assert opt_out_keyword(reply) in (*KEYWORDS, None)


def test_the_confirmation_confirms_in_the_customers_language() -> None:
    assert "退订" in confirmation_text("zh-CN") and "unsubscribed" in confirmation_text("en")

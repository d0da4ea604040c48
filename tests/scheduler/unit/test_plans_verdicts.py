"""Promises recorded in plans (services/scheduler/domain/promises.py): plans' verdict is trusted, its last word is
the same in every order, and a promise it still calls open is decided from the payments as a call's promise."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.scheduler.domain import promises
from shared.snapshots import PaymentFact

T0 = datetime(2026, 12, 1, tzinfo=UTC)
PROMISE = promises.Promise("plans:P1", 5_000, "CNY", date(2026, 12, 4), T0, T0 + timedelta(days=4))
PAID = [PaymentFact(5_000, "CNY", T0 + timedelta(days=5))]  # the whole amount, after the deadline


@pytest.mark.parametrize(("verdict", "payments", "now", "expected"), [
    (None, [], T0 + timedelta(days=1), "open"),
    ("open", [], T0 + timedelta(days=5), "broken"),        # plans has not said yet: the deadline decides
    ("open", PAID, T0 + timedelta(days=6), "kept"),        # the scheduler's own view: paid since it was made
    ("partial", PAID, T0 + timedelta(days=6), "broken"),   # plans' verdict is trusted over it
    ("broken", [], T0 + timedelta(days=1), "broken"),
    ("kept", [], T0 + timedelta(days=9), "kept"),
    ("cancelled", [], T0 + timedelta(days=1), None),
])
def test_plans_verdict_is_trusted(verdict: str | None, payments: list[PaymentFact], now: datetime,
                                  expected: str | None) -> None:
    assert promises.judged(PROMISE, verdict=verdict, payments=payments, now=now) == expected


events = st.lists(st.tuples(st.sampled_from(["open", "kept", "partial", "broken", "cancelled"]),
                            st.integers(0, 5).map(lambda h: T0 + timedelta(hours=h))), min_size=1, max_size=6)


@given(events, st.randoms())
def test_plans_last_word_is_the_same_in_every_order(sequence: list[tuple[str, datetime]], random: object) -> None:
    def last(seq: list[tuple[str, datetime]]) -> tuple[str, datetime] | None:
        stored = None
        for e in seq:
            if promises.verdict_supersedes(stored=stored, incoming=e):
                stored = e
        return stored

    shuffled = list(sequence)
    random.shuffle(shuffled)  # type: ignore[attr-defined]
    assert last(shuffled) == last(sequence)
    word = last(sequence)
    assert word is not None and (word[0] == "open") == all(s == "open" for s, _ in sequence)

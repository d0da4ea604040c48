"""A promise's last word (services/compliance/domain/promises.py) is the same in every order of its events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.compliance.domain import promises

T0 = datetime(2026, 12, 1, tzinfo=UTC)
events = st.lists(st.tuples(st.sampled_from(["open", "kept", "partial", "broken", "cancelled"]),
                            st.integers(0, 5).map(lambda h: T0 + timedelta(hours=h))), min_size=1, max_size=6)


def last_word(sequence: list[tuple[str, datetime]]) -> tuple[str, datetime]:
    stored = None
    for e in sequence:
        if promises.supersedes(stored=stored, incoming=e):
            stored = e
    assert stored is not None
    return stored


@given(events, st.randoms())
def test_every_order_ends_on_the_same_word(sequence: list[tuple[str, datetime]], random: object) -> None:
    shuffled = list(sequence)
    random.shuffle(shuffled)  # type: ignore[attr-defined]
    assert last_word(shuffled) == last_word(sequence) == last_word(list(reversed(sequence)))


def test_an_end_beats_open_whatever_comes_first() -> None:
    broken = ("broken", T0)
    assert last_word([broken, ("open", T0 + timedelta(days=1))]) == broken
    assert last_word([("open", T0 + timedelta(days=1)), broken]) == broken
    assert not promises.supersedes(stored=broken, incoming=broken)  # a repeat changes nothing
    assert promises.holds("open") and not any(promises.holds(s) for s in promises.ENDS)

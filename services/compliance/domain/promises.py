"""Promises to pay as compliance holds on them (``plans.promise-event.v1``): pure logic choosing a promise's last
word whatever order its events arrive in.

A promise is ``open`` when made, then ``kept``, ``partial``, ``broken`` or ``cancelled``. An end beats ``open``
whatever the order (a replayed ``open`` after the end changes nothing); between two ends, or two opens, the later
by its own time wins, equal times by name, so every order ends on the same word.
"""

from __future__ import annotations

from datetime import datetime

OPEN = "open"
ENDS = frozenset({"kept", "partial", "broken", "cancelled"})


def supersedes(*, stored: tuple[str, datetime] | None, incoming: tuple[str, datetime]) -> bool:
    """Whether a promise event (status, occurred_at) replaces the stored last word."""
    if stored is None:
        return True
    (old, old_at), (new, new_at) = stored, incoming
    if (old == OPEN) != (new == OPEN):
        return old == OPEN
    return (new_at, new) > (old_at, old)


def holds(status: str) -> bool:
    """Whether a promise whose last word is ``status`` holds its account (only while open)."""
    return status == OPEN

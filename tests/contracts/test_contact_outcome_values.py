"""channels.contact-outcome.v1's outcome values: the call results dialers and agents report (no_answer, busy,
voicemail, connected, right_party_contact) were added to v1 without breaking it, and every consumer group of the
topic (catalog.CONSUMERS: scheduler, compliance) gives each value a meaning."""

from __future__ import annotations

import typing
from datetime import UTC, datetime

import pytest

from services.compliance.service.context import CONVERSATIONS, UNANSWERED
from services.scheduler.domain.states import NOT_REACHED, REACHED
from shared.contracts.events import ContactOutcomeV1
from shared.tools.catalog import CONSUMERS

VALUES = frozenset(typing.get_args(ContactOutcomeV1.model_fields["outcome"].annotation))
BEFORE = frozenset({"sent", "delivered", "failed", "task_created", "unknown", "revoked"})  # v1 as first published
CALL_RESULTS = frozenset({"no_answer", "busy", "voicemail", "connected", "right_party_contact"})


def test_the_call_results_are_added_and_nothing_is_taken_away() -> None:
    assert VALUES == BEFORE | CALL_RESULTS


@pytest.mark.parametrize("outcome", sorted(VALUES))
def test_every_value_validates(outcome: str) -> None:
    ContactOutcomeV1(tenant="t", contact_id="c", account_id="a", customer_id="u", channel="call", outcome=outcome,
                     occurred_at=datetime(2026, 3, 1, tzinfo=UTC))


def test_every_consumer_interprets_every_value() -> None:
    assert set(CONSUMERS["channels.contact-outcome.v1"]) == {"scheduler", "compliance"}
    # scheduler: a contact that reached the customer closes its step done, one that did not failed
    assert REACHED | NOT_REACHED | {"revoked"} == VALUES
    assert CALL_RESULTS & NOT_REACHED == {"no_answer", "busy", "voicemail"}
    assert CALL_RESULTS & REACHED == {"connected", "right_party_contact"}
    # compliance: the ledger stores any value; the caps count the call results
    assert CALL_RESULTS <= UNANSWERED | CONVERSATIONS <= VALUES

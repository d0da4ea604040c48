"""What channels hands a provider and what it gets back: plain values, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# What an SMS provider says about a message it took: queued or sent are not final yet; unknown: it
# has no such message (or will not say).
ProviderStatus = Literal["queued", "sent", "delivered", "undelivered", "unknown"]
FINAL_STATUSES: frozenset[str] = frozenset({"delivered", "undelivered"})


@dataclass(frozen=True, slots=True)
class SendResult:
    """A provider's answer for one contact."""

    contact_id: str
    ok: bool
    provider_ref: str | None = None
    error: str | None = None
    # True when the provider never accepted the message, so trying again cannot send it twice.
    retryable: bool = False
    # The provider account it was sent through (SMS): only that account's receipts are accepted for it.
    account: str | None = None


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A provider's answer to "what became of this message?" (the reconciler asks)."""

    contact_id: str
    status: ProviderStatus | None  # None: no answer (unreachable, an error), see ``error``
    error: str | None = None


@dataclass(frozen=True, slots=True)
class OutgoingSms:
    """An SMS ready for the provider (the contact id is its idempotency key)."""

    contact_id: str
    to: str
    body: str


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    """An e-mail ready for SMTP."""

    contact_id: str
    to: str
    subject: str
    body: str
    # the signed one-click unsubscribe link (List-Unsubscribe, RFC 8058), also printed in the body; None: none
    unsubscribe_url: str | None = None

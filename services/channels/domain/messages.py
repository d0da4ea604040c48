"""What channels hands a provider and what it gets back: plain values, no I/O."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SendResult:
    """A provider's answer for one contact."""

    contact_id: str
    ok: bool
    provider_ref: str | None = None
    error: str | None = None
    # True when the provider never accepted the message, so trying again cannot send it twice.
    retryable: bool = False


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

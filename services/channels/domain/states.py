"""A contact attempt's lifecycle as a transition table (see ``service.py`` for who applies which event).

    (new) --queued--> sending --claimed--> dispatching --accepted--> sent --delivered--> delivered
    (new) --task--> task_created (calls, visits: an agent's work)
    dispatching --retry / resend--> sending;  --refused / gave_up--> failed;  --interrupted--> unknown
    unknown --accepted--> sent (an e-mail found interrupted whose send then reported success)
    a receipt may overtake our own record of the send: dispatching --delivered|undelivered--> ...
    sent --expired--> unknown (an SMS with no final status from the provider within the give-up age);
    unknown --delivered|undelivered--> delivered|failed (its final status came after all)
"""

from __future__ import annotations

from enum import StrEnum

from shared.domain import StateMachine


class AttemptStatus(StrEnum):
    """Where a contact attempt stands."""

    NEW = "new"                    # not stored yet: the state before the first event
    SENDING = "sending"            # recorded before any provider call; the dispatcher will claim it
    DISPATCHING = "dispatching"    # claimed: a provider call is (or was, if we crashed) in progress
    SENT = "sent"                  # the provider accepted it
    DELIVERED = "delivered"        # the provider's receipt says delivered
    FAILED = "failed"              # refused, undeliverable, or retried too often
    UNKNOWN = "unknown"            # interrupted during an SMTP send (maybe sent, never re-sent), or an
                                   # SMS whose final status the provider never gave (reconciler)
    TASK_CREATED = "task_created"  # a call or a visit, handed to an agent
    REVOKED = "revoked"            # a hold in force since the approval stopped it before it was sent


class AttemptEvent(StrEnum):
    """What can happen to a contact attempt."""

    QUEUED = "queued"            # approved, for a channel we send ourselves (SMS, e-mail)
    TASK = "task"                # approved, for an agent's channel (call, field visit)
    CLAIMED = "claimed"          # the dispatcher took it
    ACCEPTED = "accepted"        # the provider took it
    RETRY = "retry"              # the provider never took it: try again later
    REFUSED = "refused"          # the provider refused it, or it can never be sent
    RESEND = "resend"            # found interrupted; SMS: same idempotency key, safe to resend
    GAVE_UP = "gave_up"          # found interrupted too often
    INTERRUPTED = "interrupted"  # found interrupted; e-mail: it may have gone out, never resend
    DELIVERED = "delivered"      # receipt: delivered
    UNDELIVERED = "undelivered"  # receipt: failed
    EXPIRED = "expired"          # no final status from the provider within the give-up age
    REVOKED = "revoked"          # a hold on the account or customer, in force since the approval, before
                                 # a provider had it (on the hold's or the approval's arrival, or the claim)


_S = AttemptStatus
_E = AttemptEvent
ATTEMPT = StateMachine[AttemptStatus, AttemptEvent]("contact attempt", {
    _S.NEW: {_E.QUEUED: _S.SENDING, _E.TASK: _S.TASK_CREATED},
    _S.SENDING: {_E.CLAIMED: _S.DISPATCHING, _E.REVOKED: _S.REVOKED},
    _S.DISPATCHING: {_E.ACCEPTED: _S.SENT, _E.RETRY: _S.SENDING, _E.REFUSED: _S.FAILED, _E.RESEND: _S.SENDING,
                     _E.GAVE_UP: _S.FAILED, _E.INTERRUPTED: _S.UNKNOWN, _E.DELIVERED: _S.DELIVERED,
                     _E.UNDELIVERED: _S.FAILED},
    _S.SENT: {_E.DELIVERED: _S.DELIVERED, _E.UNDELIVERED: _S.FAILED, _E.EXPIRED: _S.UNKNOWN},
    _S.DELIVERED: {},
    _S.FAILED: {},
    # an interrupted e-mail's send may still report success: then it did go out; an SMS given up on may
    # still get its final status (a late receipt, a later poll)
    _S.UNKNOWN: {_E.ACCEPTED: _S.SENT, _E.DELIVERED: _S.DELIVERED, _E.UNDELIVERED: _S.FAILED},
    _S.TASK_CREATED: {},
    _S.REVOKED: {},
})

QUEUED_CHANNELS = frozenset({"sms", "email"})


def creation_event(channel: str) -> AttemptEvent:
    """SMS and e-mail are queued for the dispatcher; calls and visits become agent tasks."""
    return AttemptEvent.QUEUED if channel in QUEUED_CHANNELS else AttemptEvent.TASK


def retry_delay_s(tries: int, *, base_s: float = 2.0, max_s: float = 300.0) -> float:
    """Backoff before the next try of a send the provider never accepted: base**tries, capped."""
    return float(min(base_s ** tries, max_s))

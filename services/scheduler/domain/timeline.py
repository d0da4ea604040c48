"""Treatment timeline v1 (docs/domain.md, "Contact timeline"): a pre-due reminder at DPD 0 for high-risk
customers, DPD 1-15 reminders by SMS or e-mail, 16-30 calls, 31+ field visits.

Pure logic: given what we know about an account, which step comes next and on which channel.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from shared.contracts.events import Channel, Segment

_NAMESPACE = uuid.UUID("6f1c2a52-7d3e-4c55-9a0b-3e4f0c1d2b7a")


@dataclass(frozen=True, slots=True)
class StepPlan:
    """The next step: its name, channel and template."""

    step: str
    channel: Channel
    template_id: str


def plan_step(*, segment: Segment, days_past_due: int, has_phone: bool, has_email: bool,
              has_address: bool) -> StepPlan | None:
    """The step for this DPD, or None when there is nothing lawful or useful to do yet.

    Prime customers get e-mail reminders when they gave an address (gentlest channel); others SMS.
    At DPD 0 only high-risk customers get a reminder (the early-warning rule): the ``pre-due`` step, its
    own template (it says when payment is due, never "0 days overdue") and so its own contact id.
    A missing contact point falls back to the next gentler channel that exists.
    """
    if days_past_due <= 0:
        if segment is not Segment.HIGH_RISK:
            return None
        if has_email and not has_phone:
            return StepPlan("pre-due", Channel.EMAIL, "pre_due.email")
        return StepPlan("pre-due", Channel.SMS, "pre_due.sms") if has_phone else None
    if days_past_due > 30 and has_address and segment is not Segment.PRIME:
        return StepPlan("field-visit", Channel.FIELD, "field.visit")
    if days_past_due > 15 and has_phone:
        return StepPlan("call", Channel.CALL, "call.script")
    if has_email and (segment is Segment.PRIME or not has_phone):
        return StepPlan("reminder", Channel.EMAIL, "reminder.email")
    if has_phone:
        return StepPlan("reminder", Channel.SMS, "reminder.sms")
    return None


def contact_id_for(*, tenant: str, account_id: str, step: str, due_date: date) -> str:
    """Deterministic: one contact per account, step and delinquency cycle, however often replayed."""
    return str(uuid.uuid5(_NAMESPACE, f"{tenant}|{account_id}|{step}|{due_date.isoformat()}"))

"""The built-in strategy (``builtin@1``): what a tenant's treatments follow until it publishes its own, and the
starting point for writing one (``GET /v1/strategies/builtin/versions/1``). It is the contact timeline of
docs/domain.md: a pre-due reminder for high-risk customers three days before the due date when core banking
announces the instalment (``core.instalment-due.v1``), else on the due date (the early-warning step), a reminder
from DPD 1 (e-mail first for prime customers, SMS for the others; a failed one falls back to the other), a call
from DPD 16 and a field visit from DPD 31 (not for prime customers: they keep the call). A step reused in a
later bucket under the same id is the same contact: made once per delinquency cycle."""

from __future__ import annotations

from typing import Any

from services.scheduler.domain.strategies.document import BUCKETS, Strategy, parse_strategy

NAME, VERSION = "builtin", 1


def _alt(channel: str, template: str) -> dict[str, str]:
    return {"channel": channel, "template": template}


def _reminder(first: str) -> dict[str, Any]:
    other = "sms" if first == "email" else "email"
    return {"id": "reminder", "day": 1, "channel": first, "template": f"reminder.{first}",
            "fallback": [_alt(other, f"reminder.{other}")]}


def _call(day: int) -> dict[str, Any]:
    return {"id": "call", "day": day, "channel": "call", "template": "call.script",
            "fallback": [_alt("email", "reminder.email")], "fallback_on_failure": False}


def _visit(day: int) -> dict[str, Any]:
    return {"id": "field-visit", "day": day, "channel": "field", "template": "field.visit",
            "fallback": [_alt("call", "call.script"), _alt("email", "reminder.email")], "fallback_on_failure": False}


def _segment(*, pre_due: bool, first: str, visits: bool) -> dict[str, list[dict[str, Any]]]:
    late = _visit if visits else _call
    cells: dict[str, list[dict[str, Any]]] = {
        "0": [{"id": "pre-due", "day": -3, "channel": "sms", "template": "pre_due.sms",
               "fallback": [_alt("email", "pre_due.email")]}] if pre_due else [],
        "1-15": [_reminder(first)], "16-30": [_call(16)], "31-60": [late(31)], "61-90": [late(61)], "90+": [late(91)]}
    assert tuple(cells) == BUCKETS
    return cells


DOCUMENT: dict[str, Any] = {
    "description": "The built-in contact timeline (docs/domain.md): pre-due reminder for high-risk customers, "
                   "reminders from DPD 1, calls from 16, field visits from 31 (calls for prime customers).",
    "segments": {"prime": _segment(pre_due=False, first="email", visits=False),
                 "standard": _segment(pre_due=False, first="sms", visits=True),
                 "high_risk": _segment(pre_due=True, first="sms", visits=True)},
}


def builtin() -> Strategy:
    strategy, errors = parse_strategy(DOCUMENT, name=NAME, version=VERSION)
    assert strategy is not None, errors
    return strategy


BUILTIN = builtin()

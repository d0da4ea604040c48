"""Builders for rule tests: contexts, instants in a zone, holds, suppressions, consents."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from services.compliance.domain.rules.base import (
    Consent,
    ConsentKind,
    ContactContext,
    Hold,
    HoldKind,
    LedgerView,
    Suppression,
    SuppressionKind,
)
from shared.contracts.events import Channel

SHANGHAI = "Asia/Shanghai"
NEW_YORK = "America/New_York"
LONDON = "Europe/London"
KOLKATA = "Asia/Kolkata"
ADELAIDE = "Australia/Adelaide"
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


def at(zone: str, *args: int, fold: int = 0) -> datetime:
    """A wall-clock time in ``zone`` as a UTC instant."""
    return datetime(*args, tzinfo=ZoneInfo(zone), fold=fold).astimezone(UTC)  # type: ignore[misc]


def ctx(channel: Channel = Channel.SMS, zone: str = SHANGHAI, jurisdiction: str = "CN", **kw: Any) -> ContactContext:
    base = ContactContext(tenant="t1", customer_id="C1", account_id="A1", channel=channel, time_zone=zone,
                          contact_id="c-1", destination_hash="cp1:x", jurisdiction=jurisdiction,
                          days_past_due=40, overdue_minor=100_000)
    return replace(base, **kw)


def ledger(**kw: Any) -> LedgerView:
    return LedgerView(**kw)


def hold(kind: HoldKind, starts: datetime = EPOCH, ends: datetime | None = None, account_id: str | None = None) -> Hold:
    return Hold(kind=kind, starts_at=starts, ends_at=ends, reason=f"{kind.value} test", account_id=account_id)


def suppression(kind: SuppressionKind, channel: Channel | None = None, destination: str | None = None,
                start: time | None = None, end: time | None = None) -> Suppression:
    return Suppression(kind=kind, channel=channel, destination_hash=destination, source="test", at=EPOCH,
                       local_start=start, local_end=end)


def consent(kind: ConsentKind, channel: Channel, destination: str | None = None, revoked: datetime | None = None,
            start: time | None = None, end: time | None = None) -> Consent:
    return Consent(kind=kind, channel=channel, destination_hash=destination, granted_at=EPOCH, revoked_at=revoked,
                   local_start=start, local_end=end)

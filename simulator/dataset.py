"""From an event log to a scorecard training set, by event time, without leakage.

Observation points are overdue snapshots (``core.account-overdue.v1``): by default those at DPD 1, 8,
15, ... (``every`` = 7: one a week per delinquency cycle), inside the log's observation window and at
least ``horizon_days`` before its end (later ones cannot be labelled: they are dropped, not labelled 0).

- **Features** at a snapshot at time T use only that snapshot and events with event time <= T:
  ``payments_last_30d``/``_90d`` count payments with T - 30/90 days < paid_at <= T; ``previous_cures``
  counts the account's cures strictly before T; ``tenure_days`` is T's date less the ``account-opened``
  date (missing without one).
- **Label**: 1 when the account cures within ``horizon_days`` after T: at some time in (T, T + horizon]
  its overdue amount, derived the way segmentation derives it (the newest snapshot's amount less the
  payments booked strictly after it; docs/domain.md), reaches 0.

A cure is found by replaying the account's events in time order (at equal times a payment before a
snapshot: a snapshot already contains the payments booked at its instant), so the time of every cure
depends only on events up to it. The log may be in any order: events are grouped by account and sorted.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from services.segmentation.domain.scorecard import overdue_ratio

OVERDUE = "core.account-overdue.v1"
PAYMENT = "core.payment-received.v1"
OPENED = "account-opened"
_ORDER = {OPENED: 0, PAYMENT: 1, OVERDUE: 2}
_SNAPSHOT_FIELDS = ("credit_rating", "credit_score", "days_past_due", "overdue_minor", "outstanding_minor",
                    "product", "currency")


@dataclass
class _Account:
    opened_on: date | None = None
    opened_at: datetime | None = None
    # (time, order, kind, data): payments (amount, currency), snapshots (payload)
    events: list[tuple[datetime, int, str, Any]] = field(default_factory=list)


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def group(records: Iterable[dict[str, Any]]) -> tuple[dict[str, _Account], dict[str, Any] | None, datetime | None]:
    """The events the dataset needs, by account; the ``simulation`` record; the latest event time."""
    accounts: dict[str, _Account] = {}
    meta = None
    latest: datetime | None = None
    for rec in records:
        kind = rec.get("type")
        if kind == "simulation":
            meta = rec
            continue
        if kind not in _ORDER:
            continue
        at = _time(rec["event_time"])
        latest = at if latest is None or at > latest else latest
        payload = rec["payload"]
        acc = accounts.setdefault(payload["account_id"], _Account())
        if kind == OPENED:
            acc.opened_on, acc.opened_at = date.fromisoformat(payload["opened_on"]), at
        elif kind == PAYMENT:
            acc.events.append((_time(payload["paid_at"]), 1, PAYMENT, (payload["amount_minor"], payload["currency"])))
        else:
            # only what the features need (the contact points and the rest are dropped at once)
            acc.events.append((at, 2, OVERDUE, {k: payload.get(k) for k in _SNAPSHOT_FIELDS}))
    return accounts, meta, latest


def _replay(acc: _Account) -> tuple[list[datetime], list[datetime], list[tuple[datetime, dict[str, Any]]]]:
    """The account's payment times, cure times and snapshots, each in time order."""
    acc.events.sort(key=lambda e: (e[0], e[1]))
    payments: list[datetime] = []
    cures: list[datetime] = []
    snapshots: list[tuple[datetime, dict[str, Any]]] = []
    overdue = 0  # derived: the newest snapshot's amount less the payments after it
    currency = None
    for at, _, kind, data in acc.events:
        if kind == PAYMENT:
            payments.append(at)
            amount, paid_in = data
            if overdue > 0 and paid_in == currency:
                overdue = max(overdue - amount, 0)
                if overdue == 0:
                    cures.append(at)
        else:
            snapshots.append((at, data))
            overdue, currency = data["overdue_minor"], data["currency"]
    return payments, cures, snapshots


def features_at(at: datetime, snapshot: dict[str, Any], payments: list[datetime], cures: list[datetime],
                opened_on: date | None) -> dict[str, Any]:
    """The scorecard features at an overdue snapshot of time ``at`` (events up to ``at`` only)."""
    upto = bisect.bisect_right(payments, at)
    return {
        "rating": snapshot.get("credit_rating"),
        "credit_score": snapshot.get("credit_score"),
        "days_past_due": snapshot["days_past_due"],
        "overdue_ratio": float(overdue_ratio(snapshot["overdue_minor"], snapshot["outstanding_minor"]) or 0),
        "overdue_minor": snapshot["overdue_minor"],
        "product": snapshot["product"],
        "payments_last_30d": upto - bisect.bisect_right(payments, at - timedelta(days=30)),
        "payments_last_90d": upto - bisect.bisect_right(payments, at - timedelta(days=90)),
        "previous_cures": bisect.bisect_left(cures, at),
        "tenure_days": (at.date() - opened_on).days if opened_on is not None else None,
    }


def build(records: Iterable[dict[str, Any]], *, every: int = 7, horizon_days: int = 30) -> Iterator[dict[str, Any]]:
    """The training rows: ``account_id``, ``observed_at``, ``features``, ``label`` (cured within the horizon)."""
    accounts, meta, latest = group(records)
    if latest is None:
        return
    end = _time(meta["end"]) if meta else latest
    window_start = _time(meta["window_start"]) if meta else None
    horizon = timedelta(days=horizon_days)
    for account_id in sorted(accounts):
        acc = accounts[account_id]
        payments, cures, snapshots = _replay(acc)
        opened_on = acc.opened_on if acc.opened_at is not None else None
        for at, snap in snapshots:
            if (snap["days_past_due"] - 1) % every or at + horizon > end:
                continue
            if window_start is not None and at < window_start:
                continue
            known_opening = opened_on if acc.opened_at is not None and acc.opened_at <= at else None
            nxt = bisect.bisect_right(cures, at)
            label = int(nxt < len(cures) and cures[nxt] <= at + horizon)
            yield {"account_id": account_id, "observed_at": at.isoformat(),
                   "features": features_at(at, snap, payments, cures, known_opening), "label": label}

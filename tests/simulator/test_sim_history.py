"""The event log (simulator/history.py): contract shapes, determinism, several cycles, the policy's effect."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date

import pytest

from shared.contracts.events import AccountOverdueV1, PaymentReceivedV1
from simulator.history import OVERDUE, PAYMENT, run

START = date(2025, 1, 1)


@pytest.fixture(scope="module")
def log() -> list[dict]:
    return list(run(1500, seed=3, start=START, days=90, burn_in_days=60))


def test_same_seed_same_log(log: list[dict]) -> None:
    again = list(run(1500, seed=3, start=START, days=90, burn_in_days=60))
    assert again == log
    assert list(run(200, seed=4, start=START, days=90, burn_in_days=60)) != log[: len(again)]


def test_events_have_the_contract_shapes(log: list[dict]) -> None:
    kinds = Counter(e["type"] for e in log)
    assert kinds[OVERDUE] > 1000 and kinds[PAYMENT] > 1000 and kinds["sim.contact"] > 100
    for e in log[:: max(len(log) // 3000, 1)]:
        if e["type"] == OVERDUE:
            AccountOverdueV1.model_validate(e["payload"])
        elif e["type"] == PAYMENT:
            PaymentReceivedV1.model_validate(e["payload"])
            assert e["payload"]["paid_at"] == e["event_time"]


def test_snapshots_are_consistent_with_payments(log: list[dict]) -> None:
    """Each account's overdue snapshots: DPD grows by one a day inside a cycle, and the overdue amount only
    falls by what was paid in between (rises by instalments); accounts cure and go overdue again."""
    by_account: dict[str, list[dict]] = defaultdict(list)
    for e in log:
        if e["type"] in (OVERDUE, PAYMENT):
            by_account[e["payload"]["account_id"]].append(e)
    multi = 0
    for events in by_account.values():
        cycles = {e["payload"]["due_date"] for e in events if e["type"] == OVERDUE}
        multi += len(cycles) > 1
        last, paid = None, 0
        for e in sorted(events, key=lambda e: e["event_time"]):
            if e["type"] == PAYMENT:
                paid += e["payload"]["amount_minor"]
                continue
            p = e["payload"]
            if last is not None and last["due_date"] == p["due_date"]:
                assert p["days_past_due"] == last["days_past_due"] + 1
                assert p["overdue_minor"] >= last["overdue_minor"] - paid
            last, paid = p, 0
    assert multi > 10  # several delinquency cycles per account: previous cures exist


def test_the_timeline_policy_cures_more_than_no_contact() -> None:
    def cures(policy: str) -> int:
        return sum(e.get("kind") in ("full", "partial", "promise") for e in
                   run(1500, seed=9, start=START, days=60, burn_in_days=0, policy=policy))

    assert cures("timeline") > 1.05 * cures("none")

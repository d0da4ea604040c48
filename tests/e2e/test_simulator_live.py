"""End to end, the simulator's live mode (simulator/live.py) against the five services as processes: in a tenant of
its own running the shipped e-mail-first challenger against the built-in strategy, ten simulated accounts over two
rounds get contacts from the system, and the payments the behaviour model makes reach the scheduler."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from simulator.behaviour import DEFAULT_BEHAVIOUR
from simulator.live import LiveOptions, run_live
from simulator.strategies import STRATEGIES_DIR
from tests.e2e.test_pipeline import eventually
from tests.e2e.test_strategies import own_tenant, put, treatment

pytestmark = pytest.mark.e2e


async def test_live_mode_makes_contacts_and_its_payments_reach_the_scheduler(
        stack, producer, http) -> None:  # type: ignore[no-untyped-def]
    tenant, headers = await own_tenant(stack)
    sch = stack.url("scheduler")
    document = json.loads((STRATEGIES_DIR / "email-first.json").read_text())
    await put(http, f"{sch}/v1/strategies/email-first", headers, {"document": document, "reason": "simulator e2e"})
    await put(http, f"{sch}/v1/strategy-assignment", headers, {
        "champion": {"strategy": "builtin", "version": 1}, "experiment": "sim-live-e2e",
        "challengers": [{"arm": "email-first", "strategy": "email-first", "version": 1,
                         "share_bp": {"prime": 5000, "standard": 5000, "high_risk": 5000}}],
        "reason": "simulator e2e"})
    # customers who pay readily, so that two rounds surely bring payments
    options = LiveOptions(kafka=stack.kafka, channels_url=stack.url("channels"), scheduler_url=sch,
                          key=headers["Authorization"].removeprefix("Bearer "), tenant=tenant, accounts=10, days=2,
                          seed=5, dpd_range=(1, 20), settle_timeout_s=15, poll_s=0.3,
                          params=replace(DEFAULT_BEHAVIOUR, pay_intercept=2.5))
    lines: list[str] = []
    summary = await run_live(options, log=lines.append)
    print("\n".join(lines))  # shown with pytest -s

    assert [r["round"] for r in summary["rounds"]][:1] == [0]
    assert sum(r["contacts"] for r in summary["rounds"]) > 0, lines
    arms = summary["arms"]
    assert set(arms) <= {"champion", "email-first"} and sum(x["accounts"] for x in arms.values()) == 10
    assert sum(sum(x["steps"].values()) for x in arms.values()) > 0
    assert all(set(x["strategies"]) <= {"builtin@1", "email-first@1"} for x in arms.values())
    paying = [a for a in summary["accounts"] if a["payments"]]
    assert paying, lines

    async def payments_reached_the_scheduler() -> list[dict[str, Any]]:
        # a treatment stopped, or its overdue below its last snapshot's: the payments after it were deducted
        shown = [await treatment(http, stack, headers, a["account_id"]) for a in paying]
        return [t for t, a in zip(shown, paying, strict=True)
                if t is not None and (t["status"] == "stopped" or t["overdue_minor"] < a["reported_minor"])]

    assert await eventually(payments_reached_the_scheduler, 20)
    assert any(line.startswith("== ") for line in lines)

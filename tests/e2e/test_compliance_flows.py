"""End to end, the compliance engine as a customer meets it: one person with accounts at two lenders gets one
SMS a day, a reply "TD" stops every further SMS to that number, a plan agreed while an approved SMS still waits
in channels stops it, and a complaint holds its account while its clock shows on /metrics (the five services as
processes, the SMS sandbox playing the provider and the customer's phone)."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from devstack.embedded import wait_for_port
from devstack.stack import LocalStack
from tests.e2e.test_pipeline import KEY_A, KEY_B, auth, envelope, eventually, metric, overdue, phone, publish, sms_to

pytestmark = pytest.mark.e2e


async def decisions(http: httpx.AsyncClient, stack: LocalStack, key: str, account_id: str) -> list[dict[str, Any]]:
    r = await http.get(f"{stack.url('compliance')}/v1/decisions", params={"account_id": account_id},
                       headers=auth(key))
    return r.json() if r.status_code == 200 else []  # type: ignore[no-any-return]


async def test_one_debtor_at_two_lenders_gets_one_sms_a_day(stack, producer, http) -> None:  # type: ignore[no-untyped-def]
    tel = phone()
    at_a = overdue(tenant="tenant-a", tel=tel)
    await publish(producer, envelope(at_a), at_a.customer_id)
    await eventually(lambda: sms_to(http, stack, tel))
    at_b = overdue(tenant="tenant-b", tel=tel)  # the same person, as tenant-b knows them (another customer id)
    await publish(producer, envelope(at_b), at_b.customer_id)

    [decision] = await eventually(lambda: decisions(http, stack, KEY_B, at_b.account_id))
    assert (decision["outcome"], decision["rule_id"]) == ("deferred", "HOUSE-DUP"), decision
    assert decision["retry_at"] is not None
    await asyncio.sleep(2)
    assert len(await sms_to(http, stack, tel)) == 1


async def test_a_td_reply_stops_every_further_sms_to_that_number(stack, producer, http) -> None:  # type: ignore[no-untyped-def]
    tel = phone()
    first = overdue(tenant="tenant-a", tel=tel)
    await publish(producer, envelope(first), first.customer_id)
    [sms] = await eventually(lambda: sms_to(http, stack, tel))
    assert "回复TD退订" in sms["body"]

    r = await http.post(f"{stack.url('sms')}/v1/inbound", json={"from": tel, "body": "TD"})
    assert r.status_code == 200 and r.json()["status"] == 200, r.text
    assert r.json()["answer"]["opted_out"] == 1

    async def confirmed() -> list[dict[str, Any]]:
        return [m for m in await sms_to(http, stack, tel) if "退订" in m["body"] and m is not sms and
                m["message_id"] != sms["message_id"]]

    [confirmation] = await eventually(confirmed)
    assert "成功退订" in confirmation["body"]

    async def suppressed() -> bool:
        r = await http.get(f"{stack.url('compliance')}/v1/suppressions", params={"customer_id": first.customer_id},
                           headers=auth(KEY_A))
        return r.status_code == 200 and any(s["kind"] == "opt_out" for s in r.json())

    await eventually(suppressed)
    # a new delinquency cycle of the same account: a new contact, refused for that number
    later = first.model_copy(update={"due_date": date.today() + timedelta(days=30), "days_past_due": 1})
    await publish(producer, envelope(later), later.customer_id)

    async def refused() -> list[dict[str, Any]]:
        return [d for d in await decisions(http, stack, KEY_A, first.account_id) if d["outcome"] == "blocked"]

    [blocked] = await eventually(refused)
    assert blocked["rule_id"] in ("HOUSE-OPTOUT", "US-EOPTOUT"), blocked
    await asyncio.sleep(2)
    assert len(await sms_to(http, stack, tel)) == 2  # the reminder and the confirmation, nothing since


async def contacts(http: httpx.AsyncClient, stack: LocalStack, account_id: str) -> list[dict[str, Any]]:
    r = await http.get(f"{stack.url('channels')}/v1/contacts", params={"account_id": account_id}, headers=auth(KEY_A))
    return r.json() if r.status_code == 200 else []  # type: ignore[no-any-return]


async def test_a_plan_agreed_while_an_approved_sms_waits_in_channels_stops_it(stack, producer, http) -> None:  # type: ignore[no-untyped-def]
    """The SMS provider is down (the sandbox stopped): channels keeps the approved SMS ``sending`` and tries it
    again 2, 4, 8 and 16 s later. A plan agreed meanwhile holds the account (compliance.hold-changed.v1), channels
    revokes the SMS, and it never reaches the provider, not even once the provider is back."""
    tel = phone()
    p = overdue(tel=tel)
    await asyncio.to_thread(stack.stop_child, "sms")
    try:
        await publish(producer, envelope(p), p.customer_id)

        async def waiting() -> dict[str, Any] | None:  # approved, tried once, waiting for its next try
            return next((c for c in await contacts(http, stack, p.account_id)
                         if c["channel"] == "sms" and c["status"] == "sending" and c["tries"] >= 1), None)

        sms = await eventually(waiting, 20)
        plan = {"account_id": p.account_id, "customer_id": p.customer_id, "currency": "CNY", "reason": "job loss",
                "instalments": [{"due_date": str(date.today() + timedelta(days=30 * i)), "amount": "1250.00"}
                                for i in (1, 2)]}

        async def agreed() -> httpx.Response | None:  # 404 until plans has read the account's overdue notice
            r = await http.post(f"{stack.url('plans')}/v1/plans", json=plan,
                                headers=auth(KEY_A) | {"Idempotency-Key": f"plan-{p.account_id}"})
            return None if r.status_code == 404 else r

        r = await eventually(agreed, 10)
        assert r.status_code == 201, r.text

        async def revoked() -> dict[str, Any] | None:
            return next((c for c in await contacts(http, stack, p.account_id)
                         if c["contact_id"] == sms["contact_id"] and c["status"] != "sending"), None)

        settled = await eventually(revoked, 15)
        assert settled["status"] == "revoked", settled
        assert "plan hold" in settled["detail"], settled
    finally:
        await asyncio.to_thread(stack.respawn, "sms")
        await asyncio.to_thread(wait_for_port, stack.ports.sms, 30)

    async def step_cancelled() -> dict[str, Any] | None:
        r = await http.get(f"{stack.url('scheduler')}/v1/treatments/{p.account_id}", headers=auth(KEY_A))
        body: dict[str, Any] = r.json() if r.status_code == 200 else {}
        steps = [s for s in body.get("steps", []) if s["contact_id"] == sms["contact_id"]]
        return body if body.get("status") == "paused" and steps and steps[0]["status"] == "cancelled" else None

    await eventually(step_cancelled, 15)
    # the provider is back: past the retry that was due, nothing was sent and the attempt stays revoked
    await asyncio.sleep(4)
    assert await sms_to(http, stack, tel) == []
    [attempt] = [c for c in await contacts(http, stack, p.account_id) if c["contact_id"] == sms["contact_id"]]
    assert attempt["status"] == "revoked", attempt


async def test_a_complaint_holds_its_account_and_its_clock_shows_on_metrics(stack, producer, http) -> None:  # type: ignore[no-untyped-def]
    """A complaint filed over REST holds its account (CN-COMPLAINT: no automated contact while it is open), and
    compliance's /metrics counts it for the tenant (open, due soon, overdue) within its refresh interval."""
    tel = phone()
    p = overdue(tel=tel)
    com = stack.url("compliance")
    now = datetime.now(UTC)
    filed = []
    # one received 14 days ago (simple: due in 15 days, so within 24 h) and one 16 days ago (already overdue)
    for age in (timedelta(days=14), timedelta(days=16)):
        r = await http.post(f"{com}/v1/complaints", headers=auth(KEY_A) | {"X-Actor": "e2e"}, json={
            "customer_id": p.customer_id, "account_id": p.account_id, "received_at": (now - age).isoformat(),
            "channel": "phone", "summary": "催收短信太多", "complexity": "simple", "reason": "taken by phone"})
        assert r.status_code == 201, r.text
        filed.append(r.json())
    assert [c["status"] for c in filed] == ["open", "open"]

    # a later contact for the account is not approved: the complaint holds it
    await publish(producer, envelope(p), p.customer_id)
    [decision] = await eventually(lambda: decisions(http, stack, KEY_A, p.account_id))
    assert decision["outcome"] == "blocked", decision
    assert decision["rule_id"] in ("CN-COMPLAINT", "HOUSE-HOLDS"), decision

    async def clocks_shown() -> bool:
        r = await http.get(f"{com}/v1/complaints", params={"status": "open", "limit": 1000}, headers=auth(KEY_A))
        assert r.status_code == 200, r.text
        at = datetime.now(UTC)
        due = [datetime.fromisoformat(c["due_at"]) for c in r.json()]
        text = (await http.get(f"{com}/metrics")).text
        shown = (metric(text, "compliance_complaints_open", tenant="tenant-a"),
                 metric(text, "compliance_complaints_overdue", tenant="tenant-a"),
                 metric(text, "compliance_complaints_due_soon", tenant="tenant-a", within="24h"),
                 metric(text, "compliance_complaints_due_soon", tenant="tenant-a", within="72h"))
        expected = (len(due), sum(d < at for d in due), sum(at <= d < at + timedelta(hours=24) for d in due),
                    sum(at <= d < at + timedelta(hours=72) for d in due))
        refreshed = metric(text, "compliance_complaint_clocks_refreshed_timestamp_seconds")
        return refreshed > now.timestamp() and shown == expected and expected[0] >= 2 and expected[1] >= 1 \
            and expected[2] >= 1

    # tests/e2e/conftest.py sets the interval to 1 s for the stack's compliance
    await eventually(clocks_shown, float(os.environ.get("COMPLIANCE_COMPLAINT_CLOCKS_INTERVAL_S", "30")) + 10)
    await asyncio.sleep(1)
    assert await sms_to(http, stack, tel) == []

"""End to end, the compliance engine as a customer meets it: one person with accounts at two lenders gets one
SMS a day, and a reply "TD" stops every further SMS to that number (the five services as processes, the SMS
sandbox playing the customer's phone)."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from devstack.stack import LocalStack
from tests.e2e.test_pipeline import KEY_A, KEY_B, auth, envelope, eventually, overdue, phone, publish, sms_to

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

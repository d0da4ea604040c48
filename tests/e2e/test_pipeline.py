"""End to end: the five services as processes, real broker, real PostgreSQL, SMTP sink, SMS sandbox."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devstack.smtp_sink import read_mailbox
from devstack.stack import LocalStack
from shared.contracts import CloudEvent, message_key, topics
from shared.contracts.events import AccountOverdueV1
from shared.crypto import PiiCipher
from shared.messaging import build_event
from shared.settings import DEV_API_KEYS, DEV_PII_KEYS

pytestmark = pytest.mark.e2e
CIPHER = PiiCipher(DEV_PII_KEYS, "dev1")
KEY_A, KEY_B = (k for k, t in sorted(DEV_API_KEYS.items(), key=lambda kv: kv[1]))  # tenant-a, tenant-b
ZONES = ["Pacific/Kiritimati", "Pacific/Auckland", "Asia/Tokyo", "Asia/Shanghai", "Asia/Kolkata", "Europe/Moscow",
         "Europe/Berlin", "Europe/London", "America/Sao_Paulo", "America/New_York", "America/Chicago",
         "America/Los_Angeles", "Pacific/Honolulu", "Pacific/Pago_Pago"]


def zone_where(inside_hours: bool, margin_h: int = 1) -> str:
    """A real zone whose local time is (with a margin) inside or outside 08:00-22:00 right now."""
    now = datetime.now(UTC)
    for zone in ZONES:
        hours = [(now + timedelta(hours=d)).astimezone(ZoneInfo(zone)).hour for d in (0, margin_h)]
        if all((8 <= h < 22) == inside_hours for h in hours):
            return zone
    raise AssertionError("no suitable zone")


def phone() -> str:
    return "+86139" + str(uuid.uuid4().int)[:8]


def overdue(*, tenant: str = "tenant-a", days_past_due: int = 5, rating: str = "C", zone: str | None = None,
            email: str | None = None, tel: str | None = None, account_id: str | None = None,
            overdue_minor: int = 250_000, co_lenders: list[dict[str, Any]] | None = None,
            account_ref: str | None = None) -> AccountOverdueV1:
    account_id = account_id or f"ACC-{uuid.uuid4().hex[:8].upper()}"
    return AccountOverdueV1(
        tenant=tenant, account_id=account_id, customer_id=f"CUS-{account_id}", product="credit-card", currency="CNY",
        outstanding_minor=1_000_000, overdue_minor=overdue_minor, days_past_due=days_past_due,
        due_date=date.today() - timedelta(days=days_past_due), credit_rating=rating,  # type: ignore[arg-type]
        contact={"name": CIPHER.seal("测试客户", context=tenant),
                 "phone": CIPHER.seal(tel, context=tenant) if tel else None,
                 "email": CIPHER.seal(email, context=tenant) if email else None,
                 "time_zone": zone or zone_where(True), "locale": "zh-CN"},
        co_lenders=co_lenders or [], account_ref=account_ref,
    )


def envelope(payload: AccountOverdueV1) -> CloudEvent:
    return build_event(topics.ACCOUNT_OVERDUE, payload, tenant=payload.tenant, customer_id=payload.customer_id,
                       source="urn:test:core-banking", subject=payload.account_id)


async def publish(producer: AIOKafkaProducer, event: CloudEvent, customer_id: str) -> None:
    await producer.send_and_wait(topics.ACCOUNT_OVERDUE.name, event.to_bytes(),
                                 key=message_key(event.tenant, customer_id))


async def eventually(probe: Callable[[], Any], timeout_s: float = 45.0) -> Any:
    """Poll an async probe until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = await probe()
        if result:
            return result
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.25)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def sms_to(http: httpx.AsyncClient, stack: LocalStack, number: str) -> list[dict[str, Any]]:
    r = await http.get(f"{stack.url('sms')}/messages", params={"to": number})
    return r.json()["messages"]  # type: ignore[no-any-return]


async def test_overdue_events_reach_the_email_sink_and_the_sms_sandbox(stack, producer, http) -> None:  # type: ignore[no-untyped-def]
    address = f"li.{uuid.uuid4().hex[:6]}@example.com"
    prime = overdue(rating="A", email=address, tel=phone(), overdue_minor=250_000, account_ref="8842")
    tel = phone()
    standard = overdue(rating="C", tel=tel, overdue_minor=123_456)  # no account_ref: no number named
    for p in (prime, standard):
        await publish(producer, envelope(p), p.customer_id)

    async def mail_for_address() -> list[Any]:
        return [m for m in read_mailbox(stack.maildir) if m["To"] == address]

    mails = await eventually(mail_for_address)
    assert len(mails) == 1
    body = mails[0].get_content()
    assert "尾号8842" in mails[0]["Subject"] and prime.account_id[-4:] not in mails[0]["Subject"]
    assert "2,500.00 CNY" in body and "退订" in body
    messages = await eventually(lambda: sms_to(http, stack, tel))
    assert len(messages) == 1
    assert "1,234.56 CNY" in messages[0]["body"] and "TD" in messages[0]["body"]
    assert "尾号" not in messages[0]["body"] and standard.account_id[-4:] not in messages[0]["body"]
    # the SMS delivery receipt comes back to channels through the webhook
    async def delivered() -> bool:
        r = await http.get(f"{stack.url('channels')}/v1/contacts", params={"account_id": standard.account_id},
                           headers=auth(KEY_A))
        return bool(r.json()) and r.json()[0]["status"] == "delivered"

    await eventually(delivered)


async def test_the_kafka_log_holds_no_plaintext_contact_data(stack, producer, http) -> None:  # type: ignore[no-untyped-def]
    tel, address = phone(), f"pii.{uuid.uuid4().hex[:6]}@example.com"
    p = overdue(rating="A", tel=tel, email=address)
    await publish(producer, envelope(p), p.customer_id)
    await eventually(lambda: asyncio.to_thread(
        lambda: [m for m in read_mailbox(stack.maildir) if m["To"] == address]))
    consumer = AIOKafkaConsumer(*[t.name for t in topics.ALL_TOPICS], bootstrap_servers=stack.kafka,
                                group_id=f"pii-audit-{uuid.uuid4().hex}", auto_offset_reset="earliest")
    await consumer.start()
    seen = 0
    try:
        for _ in range(20):
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            if not batches and seen:
                break
            for records in batches.values():
                for r in records:
                    seen += 1
                    raw = r.value or b""
                    assert tel.encode() not in raw and address.encode() not in raw
                    assert "测试客户".encode() not in raw
    finally:
        await consumer.stop()
    assert seen > 0


async def test_quiet_hours_customer_is_deferred_and_the_decision_recorded(stack, producer, http) -> None:  # type: ignore[no-untyped-def]
    tel = phone()
    p = overdue(tel=tel, zone=zone_where(False))
    await publish(producer, envelope(p), p.customer_id)

    async def decisions() -> list[dict[str, Any]]:
        r = await http.get(f"{stack.url('compliance')}/v1/decisions", params={"account_id": p.account_id},
                           headers=auth(KEY_A))
        return r.json()  # type: ignore[no-any-return]

    [decision] = await eventually(decisions)
    assert decision["outcome"] == "deferred" and decision["rule_id"] == "CN-HOURS"
    evaluated = {r["rule_id"] for r in decision["rules_evaluated"]}
    assert {"CN-HOURS", "CN-ATTEMPTS", "HOUSE-DUP", "HOUSE-HOLDS", "HOUSE-HOLIDAY"} <= evaluated
    assert all(rule.split("-")[0] in ("CN", "HOUSE") for rule in evaluated)  # a Chinese customer: CN + house
    retry_at = datetime.fromisoformat(decision["retry_at"])
    assert retry_at > datetime.now(UTC)
    assert retry_at.astimezone(ZoneInfo(p.contact.time_zone)).hour == 8

    async def pending_step() -> dict[str, Any] | None:
        r = await http.get(f"{stack.url('scheduler')}/v1/treatments/{p.account_id}", headers=auth(KEY_A))
        steps = r.json().get("steps", []) if r.status_code == 200 else []
        return steps[0] if steps and steps[0]["status"] == "pending" else None

    step = await eventually(pending_step)
    assert step["attempt"] == 2 and "CN-HOURS" in step["last_reason"]
    assert await sms_to(http, stack, tel) == []


async def test_the_same_event_delivered_twice_gives_one_contact(stack, producer, http) -> None:  # type: ignore[no-untyped-def]
    tel = phone()
    p = overdue(tel=tel)
    event = envelope(p)
    await publish(producer, event, p.customer_id)
    await publish(producer, event, p.customer_id)
    await eventually(lambda: sms_to(http, stack, tel))
    # a second, different event for the same account and cycle is no new contact either
    await publish(producer, envelope(p), p.customer_id)

    async def segmented_twice() -> bool:
        r = await http.get(f"{stack.url('compliance')}/v1/decisions", params={"account_id": p.account_id},
                           headers=auth(KEY_A))
        metrics = (await http.get(f"{stack.url('segmentation')}/metrics")).text
        return bool(r.json()) and "events_duplicate_total" in metrics

    await eventually(segmented_twice)
    await asyncio.sleep(2)
    assert len(await sms_to(http, stack, tel)) == 1
    r = await http.get(f"{stack.url('compliance')}/v1/decisions", params={"account_id": p.account_id},
                       headers=auth(KEY_A))
    assert [d["outcome"] for d in r.json()] == ["approved"]


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


async def test_metrics_counters_move(stack, producer, http) -> None:  # type: ignore[no-untyped-def]
    before = (await http.get(f"{stack.url('compliance')}/metrics")).text
    tel = phone()
    p = overdue(tel=tel)
    await publish(producer, envelope(p), p.customer_id)
    await eventually(lambda: sms_to(http, stack, tel))
    await http.get(f"{stack.url('compliance')}/v1/decisions", params={"account_id": p.account_id},
                   headers=auth(KEY_A))
    after = (await http.get(f"{stack.url('compliance')}/metrics")).text
    assert metric(after, "contact_decisions_total", outcome="approved") > metric(
        before, "contact_decisions_total", outcome="approved")
    assert metric(after, "events_consumed_total", group="compliance") > metric(
        before, "events_consumed_total", group="compliance")
    assert metric(after, "http_requests_total", route="/v1/decisions") >= 1
    assert p.account_id not in after  # routes are labelled by template, never by raw path
    channels = (await http.get(f"{stack.url('channels')}/metrics")).text
    assert metric(channels, "contacts_sent_total", channel="sms", outcome="sent") >= 1
    assert metric(channels, "outbox_published_total", topic=topics.CONTACT_OUTCOME.name) >= 1
    assert "consumer_lag{" in channels and "outbox_backlog" in channels


async def test_plan_pauses_the_treatment_and_full_payment_stops_it(stack, producer, http) -> None:  # type: ignore[no-untyped-def]
    p = overdue(tel=phone(), zone=zone_where(False))
    await publish(producer, envelope(p), p.customer_id)
    treatment_url = f"{stack.url('scheduler')}/v1/treatments/{p.account_id}"

    async def treatment(status: str, step_status: str | None = None) -> dict[str, Any] | None:
        r = await http.get(treatment_url, headers=auth(KEY_A))
        if r.status_code != 200 or r.json()["status"] != status:
            return None
        body: dict[str, Any] = r.json()
        if step_status and (not body["steps"] or body["steps"][0]["status"] != step_status):
            return None
        return body

    await eventually(lambda: treatment("active", "pending"))
    plan = {"account_id": p.account_id, "customer_id": p.customer_id, "currency": "CNY", "reason": "job loss",
            "instalments": [{"due_date": str(date.today() + timedelta(days=30 * i)), "amount": "1250.00"}
                            for i in (1, 2)]}

    async def agreed() -> httpx.Response | None:
        # 404 until the plans consumer has the account's overdue notice; a refusal stores nothing, so the
        # retry with the same Idempotency-Key is a first request (the plan covers the 2,500.00 owed exactly)
        r = await http.post(f"{stack.url('plans')}/v1/plans", json=plan,
                            headers=auth(KEY_A) | {"Idempotency-Key": "k1"})
        return None if r.status_code == 404 else r

    r = await eventually(agreed)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["total_minor"] == 250_000 and created["total"] == "2500.00"
    again = await http.post(f"{stack.url('plans')}/v1/plans", json=plan,
                            headers=auth(KEY_A) | {"Idempotency-Key": "k1"})
    assert again.status_code == 200 and again.json()["plan_id"] == created["plan_id"]
    paused = await eventually(lambda: treatment("paused", "cancelled"))
    assert created["plan_id"] in paused["status_reason"]

    # the customer pays it all: the treatment stops (and the plan completes)
    payment = {"account_id": p.account_id, "customer_id": p.customer_id, "payment_id": f"PAY-{uuid.uuid4().hex[:6]}",
               "amount_minor": 250_000, "currency": "CNY", "paid_at": datetime.now(UTC).isoformat()}
    r = await http.post(f"{stack.url('segmentation')}/v1/payments", json={"events": [payment]}, headers=auth(KEY_A))
    assert r.json()["accepted"] == 1
    stopped = await eventually(lambda: treatment("stopped"))
    assert stopped["overdue_minor"] == 0

    async def plan_completed() -> bool:
        r = await http.get(f"{stack.url('plans')}/v1/plans/{created['plan_id']}", headers=auth(KEY_A))
        return bool(r.json()["status"] == "completed")

    await eventually(plan_completed)


async def test_partner_rest_ingestion_reaches_the_sms_sandbox(stack, http) -> None:  # type: ignore[no-untyped-def]
    tel = phone()
    item = {"event_id": uuid.uuid4().hex, "account_id": f"P-{uuid.uuid4().hex[:6]}", "customer_id": "PC-1",
            "product": "loan", "currency": "CNY", "outstanding_minor": 90000, "overdue_minor": 30000,
            "days_past_due": 7, "due_date": str(date.today() - timedelta(days=7)), "credit_score": 640,
            "contact": {"name": "赵六", "phone": tel, "time_zone": zone_where(True)}}
    bad = dict(item, currency="yuan", event_id=None)
    url = f"{stack.url('segmentation')}/v1/overdue-events"
    r = await http.post(url, json={"events": [item, bad]}, headers=auth(KEY_A))
    assert r.status_code == 200
    body = r.json()
    assert (body["accepted"], body["rejected"]) == (1, 1)
    assert body["results"][1]["errors"][0]["loc"] == ["currency"]
    # resending the same batch (same event_id) is harmless
    await http.post(url, json={"events": [item]}, headers=auth(KEY_A))
    [message] = await eventually(lambda: sms_to(http, stack, tel))
    assert "300.00 CNY" in message["body"]
    account = (await http.get(f"{stack.url('segmentation')}/v1/accounts/{item['account_id']}",
                              headers=auth(KEY_A))).json()
    assert account["segment"] == "standard" and account["phone_masked"].endswith(tel[-4:])
    assert tel not in str(account)
    await asyncio.sleep(1.5)
    assert len(await sms_to(http, stack, tel)) == 1


async def test_a_partner_never_sees_or_changes_another_tenants_data(stack, producer, http) -> None:  # type: ignore[no-untyped-def]
    p = overdue(tel=phone(), zone=zone_where(False), co_lenders=[{"tenant": "tenant-c", "share": "0.3"}])
    await publish(producer, envelope(p), p.customer_id)
    seg, sch, com, pln = (stack.url(s) for s in ("segmentation", "scheduler", "compliance", "plans"))

    async def visible_to_a() -> bool:
        return (await http.get(f"{sch}/v1/treatments/{p.account_id}", headers=auth(KEY_A))).status_code == 200

    await eventually(visible_to_a)
    assert (await http.get(f"{sch}/v1/treatments/{p.account_id}", headers=auth(KEY_B))).status_code == 404
    assert (await http.get(f"{seg}/v1/accounts/{p.account_id}", headers=auth(KEY_B))).status_code == 404
    assert (await http.get(f"{com}/v1/decisions", params={"account_id": p.account_id},
                           headers=auth(KEY_B))).json() == []
    assert (await http.get(f"{sch}/v1/treatments/{p.account_id}")).status_code == 401
    assert (await http.get(f"{sch}/v1/treatments/{p.account_id}", headers=auth("wrong"))).status_code == 401
    # tenant B cannot push events or agree plans for tenant A's account
    r = await http.post(f"{seg}/v1/overdue-events", headers=auth(KEY_B), json={"events": [
        {"tenant": "tenant-a", "account_id": p.account_id, "customer_id": p.customer_id, "product": "x",
         "currency": "CNY", "outstanding_minor": 1, "overdue_minor": 1, "days_past_due": 1,
         "due_date": str(date.today()), "credit_rating": "A", "contact": {"name": "x", "phone": phone()}}]})
    assert r.json()["results"][0]["status"] == "rejected"
    plan = {"account_id": p.account_id, "customer_id": p.customer_id, "currency": "CNY",
            "instalments": [{"due_date": str(date.today() + timedelta(days=5)), "amount": "10000.00"}]}

    async def known_to_plans_for_a() -> bool:  # a plan too small for A's account: refused, stores nothing
        too_small = plan | {"instalments": [{"due_date": str(date.today() + timedelta(days=5)), "amount": "1.00"}]}
        return (await http.post(f"{pln}/v1/plans", json=too_small, headers=auth(KEY_A))).status_code == 422

    await eventually(known_to_plans_for_a)
    r = await http.post(f"{pln}/v1/plans", json=plan, headers=auth(KEY_B))
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["title"] == "Account not known to plans"  # tenant B has no such account
    assert (await http.get(f"{pln}/v1/plans", params={"account_id": p.account_id}, headers=auth(KEY_B))).json() == []
    assert (await http.get(f"{pln}/v1/plans", params={"account_id": p.account_id}, headers=auth(KEY_A))).json() == []
    await asyncio.sleep(2)
    # and tenant A's treatment is not paused
    assert (await http.get(f"{sch}/v1/treatments/{p.account_id}", headers=auth(KEY_A))).json()["status"] == "active"


async def test_problem_details_for_bad_input(stack, http) -> None:  # type: ignore[no-untyped-def]
    r = await http.post(f"{stack.url('plans')}/v1/plans", headers=auth(KEY_A), json={
        "account_id": "A", "customer_id": "C", "currency": "CNY",
        "instalments": [{"due_date": "2020-01-01", "amount": "10.001"}]})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    assert "instalment 1" in r.json()["detail"]
    r = await http.post(f"{stack.url('segmentation')}/v1/overdue-events", headers=auth(KEY_A), json={"events": []})
    assert r.status_code == 422 and r.json()["title"] == "Invalid request"
    assert re.search(r"events", str(r.json()["errors"]))

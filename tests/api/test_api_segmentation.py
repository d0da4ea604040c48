"""Segmentation routes through the ASGI app on the real database: POST /v1/overdue-events,
POST /v1/payments (per-item results, only accepted items in the outbox, PII sealed) and
GET /v1/accounts/{account_id} (servicer, co-lender, nobody else)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.segmentation import service
from services.segmentation.domain.scorecard import load_default
from services.segmentation.domain.segments import classify
from shared.contracts import topics
from shared.contracts.events import AccountOverdueV1, InstalmentDueV1, PaymentReceivedV1
from shared.messaging import build_event
from tests.api.support import CIPHER, ServiceApi, Tenant, assert_problem, unique

pytestmark = pytest.mark.integration


def phone() -> str:
    return f"+86138{random.randint(10_000_000, 99_999_999)}"


def overdue_item(**changes: Any) -> dict[str, Any]:
    contact = {"name": f"张三{uuid.uuid4().hex[:6]}", "phone": phone(),
               "email": f"zhang.{uuid.uuid4().hex[:8]}@example.com", "address": "上海市浦东新区世纪大道1号",
               "national_id": "110101199001011234",
               "time_zone": "Asia/Shanghai", "locale": "zh-CN"}
    item = {"account_id": unique("ACC"), "customer_id": unique("C"), "product": "credit-card", "currency": "CNY",
            "outstanding_minor": 1_000_000, "overdue_minor": 250_000, "days_past_due": 5,
            "due_date": (date.today() - timedelta(days=5)).isoformat(), "credit_rating": "C", "contact": contact}
    return item | changes


def payment_item(**changes: Any) -> dict[str, Any]:
    item = {"account_id": unique("ACC"), "customer_id": unique("C"), "payment_id": unique("PAY"),
            "amount_minor": 50_000, "currency": "CNY", "paid_at": datetime.now(UTC).isoformat()}
    return item | changes


def contact_of(item: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return item["contact"] | changes  # type: ignore[no-any-return]


async def test_an_overdue_batch_accepts_good_items_rejects_bad_ones_and_outboxes_only_the_good(
        segmentation: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    good = overdue_item()
    good_with_id = overdue_item(event_id=unique("evt"), tenant=tenant_a.id)
    bad = [
        overdue_item(overdue_minor=2_000_000),                       # more overdue than outstanding
        overdue_item(tenant=tenant_b.id),                            # another tenant's event
        overdue_item(credit_rating=None),                            # neither rating nor score
        overdue_item(currency="cny"),
        overdue_item(days_past_due=-1),
        overdue_item(unexpected="field"),
    ]
    bad.append(overdue_item(contact=contact_of(bad[0], phone="13812345678")))        # not E.164
    bad.append(overdue_item(contact=contact_of(bad[0], time_zone="Mars/Olympus")))   # not an IANA zone
    batch = [good, bad[0], bad[1], good_with_id, *bad[2:]]

    response = await segmentation.client.post("/v1/overdue-events", json={"events": batch}, headers=tenant_a.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, len(bad))
    results = body["results"]
    assert [r["index"] for r in results] == list(range(len(batch)))
    assert [r["status"] for r in results] == ["accepted", "rejected", "rejected", "accepted"] + ["rejected"] * 6
    for r in results:
        if r["status"] == "rejected":
            assert r["errors"] and r["event_id"] is None
        else:
            assert r["errors"] is None and r["event_id"]
    assert results[2]["errors"] == [{"loc": ["tenant"], "msg": "you may only submit events for your own tenant"}]
    assert any("unexpected" in e["loc"] for e in results[7]["errors"])
    assert any(e["loc"][-2:] == ["contact", "phone"] for e in results[8]["errors"])
    assert any(e["loc"][-2:] == ["contact", "time_zone"] for e in results[9]["errors"])
    # the partner's own event id makes a resend harmless; without one, a fresh id
    assert results[3]["event_id"] == f"{tenant_a.id}:overdue:{good_with_id['event_id']}"
    uuid.UUID(results[0]["event_id"])

    rows = await segmentation.outbox(tenant_a)
    assert [r.event.id for r in rows] == [results[0]["event_id"], results[3]["event_id"]]
    for row, item in zip(rows, (good, good_with_id), strict=True):
        assert (row.topic, row.key) == (topics.ACCOUNT_OVERDUE.name, f"{tenant_a.id}:{item['customer_id']}".encode())
        event = row.event
        assert (event.type, event.tenant, event.subject, event.source) == (
            topics.ACCOUNT_OVERDUE.event_type, tenant_a.id, item["account_id"], service.PARTNER_SOURCE)
        payload = AccountOverdueV1.model_validate(event.data)
        assert (payload.tenant, payload.account_id, payload.overdue_minor) == (tenant_a.id, item["account_id"],
                                                                               250_000)
        contact = item["contact"]
        for field in ("name", "phone", "email", "address", "national_id"):
            sealed = getattr(payload.contact, field)
            assert CIPHER.open(sealed, context=tenant_a.id) == contact[field]   # sealed, bound to the tenant
            assert contact[field].encode() not in row.value                    # no plaintext on the bus
    assert await segmentation.outbox(tenant_b) == []
    for item in bad:
        assert await segmentation.outbox_containing(item["account_id"]) == []


async def test_resending_an_overdue_event_with_its_id_keeps_the_event_id(
        segmentation: ServiceApi, tenant_a: Tenant) -> None:
    item = overdue_item(event_id=unique("evt"))
    ids = []
    for _ in range(2):
        response = await segmentation.client.post("/v1/overdue-events", json={"events": [item]},
                                                  headers=tenant_a.headers)
        assert response.status_code == 200, response.text
        ids.append(response.json()["results"][0]["event_id"])
    assert ids[0] == ids[1] == f"{tenant_a.id}:overdue:{item['event_id']}"
    assert [r.event.id for r in await segmentation.outbox(tenant_a)] == ids  # consumers dedupe on the id


async def test_payments_are_accepted_per_item_and_a_reposted_payment_keeps_its_event_id(
        segmentation: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    pay = payment_item()
    named = payment_item(event_id=unique("pe"))
    bad = [payment_item(amount_minor=0), payment_item(tenant=tenant_b.id), payment_item(currency="usd"),
           {k: v for k, v in payment_item().items() if k != "paid_at"}, payment_item(payment_id="")]
    response = await segmentation.client.post("/v1/payments", json={"events": [pay, *bad, named]},
                                              headers=tenant_a.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 5)
    assert [r["status"] for r in body["results"]] == ["accepted"] + ["rejected"] * 5 + ["accepted"]
    assert body["results"][2]["errors"][0]["loc"] == ["tenant"]
    first_id = body["results"][0]["event_id"]
    assert first_id == f"{tenant_a.id}:payment:payment-{pay['payment_id']}"
    assert body["results"][6]["event_id"] == f"{tenant_a.id}:payment:{named['event_id']}"

    again = await segmentation.client.post("/v1/payments", json={"events": [pay]}, headers=tenant_a.headers)
    assert again.status_code == 200, again.text
    assert again.json()["results"][0]["event_id"] == first_id  # the same payment can never count twice

    rows = await segmentation.outbox(tenant_a)
    assert [r.event.id for r in rows] == [first_id, body["results"][6]["event_id"], first_id]
    for row in rows:
        assert row.topic == topics.PAYMENT_RECEIVED.name
        assert (row.event.type, row.event.tenant, row.event.source) == (
            topics.PAYMENT_RECEIVED.event_type, tenant_a.id, service.PARTNER_SOURCE)
        payload = PaymentReceivedV1.model_validate(row.event.data)
        assert payload.tenant == tenant_a.id
        assert row.key == f"{tenant_a.id}:{payload.customer_id}".encode()
    assert PaymentReceivedV1.model_validate(rows[0].event.data).amount_minor == 50_000
    assert await segmentation.outbox(tenant_b) == []
    for item in bad:
        assert await segmentation.outbox_containing(item["account_id"]) == []


def due_item(**changes: Any) -> dict[str, Any]:
    item = overdue_item()
    item.pop("overdue_minor"), item.pop("days_past_due")
    return item | {"amount_due_minor": 41_667, "due_date": (date.today() + timedelta(days=5)).isoformat()} | changes


async def test_instalments_announced_early_are_accepted_per_item_sealed_and_published(
        segmentation: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    good = due_item(event_id=unique("due"))
    bad = [due_item(amount_due_minor=2_000_000),          # more than the balance
           due_item(amount_due_minor=0),
           due_item(overdue_minor=5),                     # an overdue notice's field: not this contract's
           due_item(tenant=tenant_b.id)]
    response = await segmentation.client.post("/v1/due-events", json={"events": [good, *bad]},
                                              headers=tenant_a.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (1, 4)
    assert body["results"][0]["event_id"] == f"{tenant_a.id}:due:{good['event_id']}"
    [row] = await segmentation.outbox(tenant_a)
    assert (row.topic, row.event.type) == (topics.INSTALMENT_DUE.name, topics.INSTALMENT_DUE.event_type)
    payload = InstalmentDueV1.model_validate(row.event.data)
    assert (payload.amount_due_minor, payload.tenant) == (41_667, tenant_a.id)
    assert CIPHER.open(payload.contact.phone, context=tenant_a.id) == good["contact"]["phone"]  # type: ignore[arg-type]
    assert good["contact"]["phone"].encode() not in row.value
    for item in bad:
        assert await segmentation.outbox_containing(item["account_id"]) == []


@pytest.mark.parametrize("path", ["/v1/overdue-events", "/v1/payments"])
async def test_a_batch_where_every_item_is_rejected_commits_nothing(
        segmentation: ServiceApi, tenant_a: Tenant, tenant_b: Tenant, path: str) -> None:
    item = (overdue_item if path == "/v1/overdue-events" else payment_item)(tenant=tenant_b.id)
    response = await segmentation.client.post(path, json={"events": [item, {"account_id": "x"}]},
                                              headers=tenant_a.headers)
    assert response.status_code == 200, response.text
    assert (response.json()["accepted"], response.json()["rejected"]) == (0, 2)
    assert await segmentation.outbox(tenant_a) == []
    assert await segmentation.outbox(tenant_b) == []
    assert await segmentation.outbox_containing(item["account_id"]) == []


@pytest.mark.parametrize("path", ["/v1/overdue-events", "/v1/payments"])
@pytest.mark.parametrize("body", [
    pytest.param({"events": []}, id="empty-batch"),
    pytest.param({}, id="no-events"),
    pytest.param({"events": ["not an object"]}, id="item-not-an-object"),
    pytest.param({"events": None}, id="events-null"),
    pytest.param("too-big", id="1001-items"),
])
async def test_a_malformed_batch_is_a_422_problem_and_stores_nothing(
        segmentation: ServiceApi, tenant_a: Tenant, path: str, body: Any) -> None:
    marker = unique("ACC")
    if body == "too-big":
        make = overdue_item if path == "/v1/overdue-events" else payment_item
        body = {"events": [make(account_id=marker) for _ in range(1001)]}
    problem = assert_problem(await segmentation.client.post(path, json=body, headers=tenant_a.headers), 422)
    assert problem["title"] == "Invalid request" and problem["errors"]
    assert await segmentation.outbox(tenant_a) == []
    assert await segmentation.outbox_containing(marker) == []


@pytest.mark.parametrize("path", ["/v1/overdue-events", "/v1/payments"])
async def test_a_body_that_is_not_json_is_a_422_problem(segmentation: ServiceApi, tenant_a: Tenant, path: str) -> None:
    response = await segmentation.client.post(path, content=b'{"events": [', headers=tenant_a.headers
                                              | {"content-type": "application/json"})
    assert_problem(response, 422)
    assert await segmentation.outbox(tenant_a) == []


@pytest.mark.parametrize("headers", [
    pytest.param({}, id="no-key"),
    pytest.param({"Authorization": "Bearer dev-key-tenant-a-but-wrong"}, id="unknown-key"),
    pytest.param({"Authorization": "Token x"}, id="wrong-scheme"),
])
async def test_every_segmentation_route_needs_a_valid_api_key(
        segmentation: ServiceApi, headers: dict[str, str]) -> None:
    overdue, pay = overdue_item(), payment_item()
    for path, item in (("/v1/overdue-events", overdue), ("/v1/payments", pay)):
        problem = assert_problem(await segmentation.client.post(path, json={"events": [item]}, headers=headers), 401)
        assert problem["title"] == "Unauthorized"
        assert await segmentation.outbox_containing(item["account_id"]) == []
    assert_problem(await segmentation.client.get(f"/v1/accounts/{overdue['account_id']}", headers=headers), 401)


async def seed_account(api: ServiceApi, tenant: Tenant, account_id: str, *, co_lenders: list[dict[str, Any]],
                       phone_number: str, email: str, dpd: int = 20, rating: str = "D",
                       account_ref: str | None = None, at: datetime | None = None) -> AccountOverdueV1:
    payload = AccountOverdueV1(
        tenant=tenant.id, account_id=account_id, customer_id=f"C-{account_id}", product="cash-loan",
        currency="CNY", outstanding_minor=900_000, overdue_minor=120_000, days_past_due=dpd,
        due_date=date.today() - timedelta(days=dpd), credit_rating=rating,
        contact={"name": CIPHER.seal("李四", context=tenant.id), "phone": CIPHER.seal(phone_number, context=tenant.id),
                 "email": CIPHER.seal(email, context=tenant.id), "time_zone": "Asia/Shanghai"},
        co_lenders=co_lenders, account_ref=account_ref)
    event = build_event(topics.ACCOUNT_OVERDUE, payload, tenant=tenant.id, customer_id=payload.customer_id,
                        source="urn:test")
    if at is not None:
        event = event.model_copy(update={"time": at})
    async with api.runtime.units() as uow:
        await service.record_overdue(uow, overdue=[(payload, event)])
        await uow.commit()
    return payload


async def test_an_account_is_shown_to_its_servicer_and_co_lenders_only_with_contact_points_masked(
        segmentation: ServiceApi, tenant_a: Tenant, tenant_b: Tenant, tenant_c: Tenant) -> None:
    account = unique("ACC")
    number = phone()
    seeded = await seed_account(segmentation, tenant_a, account, co_lenders=[{"tenant": tenant_b.id, "share": "0.3"}],
                                phone_number=number, email="li.si@example.com", account_ref="LN731")
    before = await segmentation.outbox(tenant_a)

    response = await segmentation.client.get(f"/v1/accounts/{account}", headers=tenant_a.headers)
    assert response.status_code == 200, response.text
    shown = response.json()
    expected = classify(credit_rating="D", credit_score=None, days_past_due=20)
    # scored by the shipped default (the tenant promoted none), from the snapshot's features at its time
    scored = load_default().score({"rating": "D", "credit_score": None, "days_past_due": 20,
                                   "overdue_ratio": 0.1333, "overdue_minor": 120_000, "product": "cash-loan",
                                   "payments_last_30d": 0, "payments_last_90d": 0})
    assert shown == {
        "tenant": tenant_a.id, "account_id": account, "account_ref": "LN731", "customer_id": seeded.customer_id,
        "product": "cash-loan",
        "currency": "CNY", "outstanding_minor": 900_000, "overdue_minor": 120_000, "days_past_due": 20,
        "due_date": seeded.due_date.isoformat(), "segment": expected.segment.value, "dpd_bucket": expected.dpd_bucket,
        "status": "overdue", "phone_masked": "*" * (len(number) - 4) + number[-4:],
        "email_masked": "l***@example.com", "time_zone": "Asia/Shanghai",
        "co_lenders": [{"tenant": tenant_b.id, "share": "0.3", "share_bp": 3000}], "access": "servicer",
        "score": {"scorecard": "sim-2025.1", "points": scored.points, "probability": f"{scored.probability:.4f}",
                  "reasons": [{"code": r.code, "text": r.text} for r in scored.reasons]}}
    assert number.encode() not in response.content and "李四".encode() not in response.content

    as_co_lender = await segmentation.client.get(f"/v1/accounts/{account}", headers=tenant_b.headers)
    assert as_co_lender.status_code == 200, as_co_lender.text
    assert as_co_lender.json() == shown | {"access": "co-lender"}

    problem = assert_problem(await segmentation.client.get(f"/v1/accounts/{account}", headers=tenant_c.headers), 404)
    assert problem["title"] == "Not found" and account in problem["detail"]
    assert_problem(await segmentation.client.get(f"/v1/accounts/{unique('ACC')}", headers=tenant_a.headers), 404)
    assert await segmentation.outbox(tenant_a) == before  # reads announce nothing


async def test_the_account_shows_the_snapshot_less_the_payments_booked_after_it_whatever_their_order(
        segmentation: ServiceApi, tenant_a: Tenant) -> None:
    account, at = unique("ACC"), datetime.now(UTC) - timedelta(days=1)

    def paid(amount: int, paid_at: datetime) -> PaymentReceivedV1:
        return PaymentReceivedV1(tenant=tenant_a.id, account_id=account, customer_id=f"C-{account}",
                                 payment_id=unique("PAY"), amount_minor=amount, currency="CNY", paid_at=paid_at)

    async def record(*payments: PaymentReceivedV1) -> None:
        async with segmentation.runtime.units() as uow:
            await service.record_payments(uow, payments=payments)
            await uow.commit()

    async def shown() -> dict[str, Any]:
        response = await segmentation.client.get(f"/v1/accounts/{account}", headers=tenant_a.headers)
        assert response.status_code == 200, response.text
        return {k: response.json()[k] for k in ("overdue_minor", "outstanding_minor", "status")}

    # a payment that arrives before its account, booked after the notice's time: kept, then counted
    early = paid(20_000, at + timedelta(hours=1))
    await record(early)
    await seed_account(segmentation, tenant_a, account, co_lenders=[], phone_number=phone(), email="a@example.com",
                       at=at)
    assert await shown() == {"overdue_minor": 100_000, "outstanding_minor": 880_000, "status": "overdue"}
    # booked before the notice: already in it; the same payment again: counted once
    await record(paid(50_000, at - timedelta(hours=1)), early)
    assert await shown() == {"overdue_minor": 100_000, "outstanding_minor": 880_000, "status": "overdue"}
    await record(paid(100_000, at + timedelta(hours=2)))
    assert await shown() == {"overdue_minor": 0, "outstanding_minor": 780_000, "status": "cured"}


async def test_a_tenant_sees_its_own_account_before_one_it_co_lends_with_the_same_id(
        segmentation: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    account = unique("ACC")
    await seed_account(segmentation, tenant_a, account, co_lenders=[{"tenant": tenant_b.id, "share": "0.5"}],
                       phone_number=phone(), email="a@example.com")
    await seed_account(segmentation, tenant_b, account, co_lenders=[], phone_number=phone(), email="b@example.com",
                       dpd=3, rating="A")
    response = await segmentation.client.get(f"/v1/accounts/{account}", headers=tenant_b.headers)
    assert response.status_code == 200, response.text
    assert (response.json()["tenant"], response.json()["access"], response.json()["days_past_due"]) == (
        tenant_b.id, "servicer", 3)
    assert response.json()["email_masked"] == "b***@example.com"


async def test_a_time_zone_that_names_a_directory_rejects_only_that_item(
        segmentation: ServiceApi, tenant_a: Tenant) -> None:
    good, bad = overdue_item(), overdue_item()
    bad["contact"] = contact_of(bad, time_zone="Asia")
    response = await segmentation.client.post("/v1/overdue-events", json={"events": [good, bad]},
                                              headers=tenant_a.headers)
    assert response.status_code == 200, response.text
    assert [r["status"] for r in response.json()["results"]] == ["accepted", "rejected"]
    assert len(await segmentation.outbox(tenant_a)) == 1


@pytest.mark.parametrize("path", ["/v1/overdue-events", "/v1/payments"])
async def test_a_partner_event_id_of_the_allowed_length_gives_a_decodable_event_or_is_rejected(
        segmentation: ServiceApi, tenant_a: Tenant, path: str) -> None:
    item = (overdue_item if path == "/v1/overdue-events" else payment_item)(event_id="e" * 200)
    response = await segmentation.client.post(path, json={"events": [item]}, headers=tenant_a.headers)
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    rows = await segmentation.outbox(tenant_a)
    if result["status"] == "accepted":
        [row] = rows
        assert row.event.id == result["event_id"]  # what every consumer does first (parse_record)
    else:
        assert rows == []


async def test_amounts_beyond_the_money_bound_are_rejected_per_item(segmentation: ServiceApi, tenant_a: Tenant) -> None:
    huge = 2**70  # beyond any 64-bit integer
    items = [overdue_item(), overdue_item(outstanding_minor=huge, overdue_minor=huge),
             overdue_item(outstanding_minor=10**15 + 1)]
    response = await segmentation.client.post("/v1/overdue-events", json={"events": items}, headers=tenant_a.headers)
    assert response.status_code == 200, response.text
    assert [r["status"] for r in response.json()["results"]] == ["accepted", "rejected", "rejected"]
    assert len(await segmentation.outbox(tenant_a)) == 1
    payments = await segmentation.client.post("/v1/payments", json={"events": [payment_item(amount_minor=huge)]},
                                              headers=tenant_a.headers)
    assert [r["status"] for r in payments.json()["results"]] == ["rejected"]


async def test_a_payment_in_another_currency_than_its_account_is_rejected_per_item(
        segmentation: ServiceApi, tenant_a: Tenant) -> None:
    account = unique("ACC")
    await seed_account(segmentation, tenant_a, account, co_lenders=[], phone_number=phone(), email="a@example.com")
    before = len(await segmentation.outbox(tenant_a))
    items = [payment_item(account_id=account, currency="USD"), payment_item(account_id=account, currency="CNY"),
             payment_item(currency="USD")]  # an account not known yet: accepted (it may arrive later)
    response = await segmentation.client.post("/v1/payments", json={"events": items}, headers=tenant_a.headers)
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["rejected", "accepted", "accepted"]
    assert results[0]["errors"] == [{"loc": ["currency"], "msg": f"account {account} is in CNY, not USD"}]
    assert len(await segmentation.outbox(tenant_a)) == before + 2

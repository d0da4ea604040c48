"""Publish a demo portfolio to a running stack: `make demo` (after `make run` in another terminal).

A few hundred realistic overdue accounts for two tenants, across segments, DPD buckets, products,
currencies and time zones (some customers are in their night, so compliance defers them), sent
on Kafka exactly as core banking would: CloudEvents with sealed PII, keyed by tenant:customer.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from shared.contracts import message_key, topics
from shared.contracts.events import AccountOverdueV1
from shared.crypto import PiiCipher
from shared.messaging import build_event
from shared.settings import DEV_PII_KEYS, EMBEDDED_KAFKA

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["伟", "芳", "娜", "秀英", "敏", "静", "磊", "强", "洋", "艳", "勇", "军", "杰", "娟", "涛", "明", "超"]
CITIES = ["北京市朝阳区建国路", "上海市浦东新区世纪大道", "南京市鼓楼区中山路", "宁波市鄞州区天童路",
          "西安市雁塔区高新路", "广州市天河区珠江新城", "成都市武侯区人民南路"]
ZONES = [("Asia/Shanghai", "zh-CN", 70), ("Asia/Hong_Kong", "zh-CN", 8), ("Asia/Singapore", "en", 6),
         ("Europe/London", "en", 6), ("America/New_York", "en", 5), ("America/Los_Angeles", "en", 5)]
PRODUCTS = [("credit-card", "CNY"), ("consumer-loan", "CNY"), ("co-lent-loan", "CNY"), ("car-loan", "CNY"),
            ("sme-loan", "CNY"), ("personal-loan", "HKD"), ("personal-loan", "USD")]


def portfolio(count: int, seed: int) -> list[AccountOverdueV1]:
    """Deterministic for a seed; PII is sealed with the development key for each tenant."""
    rng = random.Random(seed)
    cipher = PiiCipher(DEV_PII_KEYS, "dev1")
    accounts = []
    for i in range(count):
        tenant = "tenant-a" if i % 3 else "tenant-b"
        zone, locale, _ = rng.choices(ZONES, weights=[w for *_, w in ZONES])[0]
        product, currency = rng.choice(PRODUCTS)
        dpd = rng.choice([0, 1, 3, 5, 8, 12, 15, 18, 22, 27, 30, 35, 45, 60, 75, 95, 120])
        outstanding = rng.randrange(2_000, 300_000) * 100
        overdue = max(outstanding * rng.randrange(5, 40) // 100, 100)
        name = rng.choice(SURNAMES) + rng.choice(GIVEN) if locale == "zh-CN" else f"Customer {i}"
        phone = f"+86{rng.choice(['138', '139', '150', '186', '177'])}{rng.randrange(10**8):08d}"
        email = f"demo{i}@example.com" if rng.random() < 0.6 else None
        address = f"{rng.choice(CITIES)}{rng.randrange(1, 999)}号" if rng.random() < 0.7 else None
        rating = rng.choices("ABCDE", weights=[20, 30, 25, 15, 10])[0]
        co_lenders = [{"tenant": "tenant-b", "share": "0.3"}] if product == "co-lent-loan" and tenant == "tenant-a" \
            else []
        accounts.append(AccountOverdueV1(
            tenant=tenant, account_id=f"DEMO-{seed}-{i:05d}", customer_id=f"CUST-{seed}-{i:05d}", product=product,
            currency=currency, outstanding_minor=outstanding, overdue_minor=overdue, days_past_due=dpd,
            due_date=date.today() - timedelta(days=dpd), credit_rating=rating,  # type: ignore[arg-type]
            credit_score=rng.randrange(300, 950) if rng.random() < 0.5 else None,
            contact={"name": cipher.seal(name, context=tenant), "phone": cipher.seal(phone, context=tenant),
                     "email": cipher.seal(email, context=tenant) if email else None,
                     "address": cipher.seal(address, context=tenant) if address else None,
                     "time_zone": zone, "locale": locale},
            co_lenders=co_lenders, account_ref=f"{rng.randrange(10_000):04d}"))
    return accounts


async def publish(bootstrap: str, accounts: list[AccountOverdueV1]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        await producer.start()
        for account in accounts:
            event = build_event(topics.ACCOUNT_OVERDUE, account, tenant=account.tenant,
                                customer_id=account.customer_id, source="urn:demo:core-banking",
                                subject=account.account_id)
            await producer.send(topics.ACCOUNT_OVERDUE.name, event.to_bytes(),
                                key=message_key(account.tenant, account.customer_id))
        await producer.flush()
    finally:
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--seed", type=int, default=int(datetime.now(UTC).timestamp()))
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", EMBEDDED_KAFKA))
    args = parser.parse_args()
    accounts = portfolio(args.count, args.seed)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the one-line message below says it all
    try:
        asyncio.run(publish(args.bootstrap, accounts))
    except KafkaConnectionError:
        raise SystemExit(f"no Kafka broker answers at {args.bootstrap}: start the stack first (make run), "
                         "or set KAFKA_BOOTSTRAP_SERVERS") from None
    dpd = Counter("0" if a.days_past_due == 0 else "1-15" if a.days_past_due <= 15 else "16-30"
                  if a.days_past_due <= 30 else "31+" for a in accounts)
    zones = Counter(a.contact.time_zone for a in accounts)
    print(f"published {len(accounts)} overdue accounts (seed {args.seed}) to {args.bootstrap}")
    print("  by DPD:", dict(sorted(dpd.items())))
    print("  by time zone:", dict(zones.most_common()))
    print("see: SMS  http://127.0.0.1:8090/messages   e-mail .data/mail/   "
          "treatments  GET http://127.0.0.1:8002/v1/treatments/DEMO-... (Authorization: Bearer dev-key-tenant-a)")


if __name__ == "__main__":
    main()

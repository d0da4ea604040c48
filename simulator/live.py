"""The simulator against the real running system (docs/simulator.md, "Live mode" and "Replay").

``run_live`` drives the stack ``make run`` starts (or the end-to-end tests' stack): each round is a simulated day.

1. Every account still overdue gets its core-banking snapshot on ``core.account-overdue.v1`` (a CloudEvent built
   with ``shared.messaging.build_event``, keyed ``tenant:customer_id``, contact data sealed with the development
   PII key), its DPD one more than the round before.
2. The round waits until the system has settled: the scheduler shows the account's treatment at today's DPD with no
   step still in flight (``requested``) and channels shows every contact made since the round began in a final
   status (``GET /v1/contacts?account_id=``), or the timeout passes.
3. The contacts channels made this round go to the behaviour model (``simulator.behaviour.step``): a message that
   failed reached nobody; whether one that was made reached the customer is drawn (``reached_once_made``).
4. The payments the model produces go out on ``core.payment-received.v1`` (paid now).

Time is the system's real clock: a round is a "day" only for the DPD. With ``due_dates="fixed"`` (the default) the
due date is back-dated once: one delinquency cycle, each step made once, as in production, but a step timed to a
local hour on a later DPD falls due on a later calendar day (untimed steps, like the built-in strategy's, come in
their round). With ``"back-dated"`` each round's snapshot says ``due_date = today - DPD``, so timed steps fall due
today; the scheduler then sees a new delinquency cycle each round (a contact id names the due date) and makes the
step of the account's DPD again: contacts per account are overstated. Retries and fallbacks fall due their real
delay after the outcome (30 minutes, 4 hours): a short run sees only those with no delay. Accounts live in time
zones where it is daytime now, so quiet hours do not defer every contact; SMS numbers ending 0000 are the
sandbox's dead numbers (``delivery_failure`` of them).

``replay`` publishes a recorded event log (``python -m simulator.simulate history``) in event-time order.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from aiokafka import AIOKafkaProducer

from shared.contracts import message_key, topics
from shared.contracts.events import AccountOverdueV1, PaymentReceivedV1
from shared.crypto import PiiCipher
from shared.messaging import build_event
from shared.settings import DEV_PII_KEYS, EMBEDDED_KAFKA
from simulator.behaviour import (
    DEFAULT_BEHAVIOUR,
    AccountState,
    Behaviour,
    Contact,
    initial_state,
    reached_once_made,
    step,
)
from simulator.portfolio import Account, account_rng, draw_account

SOURCE = "urn:simulator:core-banking"
CIPHER = PiiCipher(DEV_PII_KEYS, "dev1")
# Zones around the world (as tests/e2e/test_pipeline.py): an account lives in one where it is daytime now
ZONES = ("Pacific/Kiritimati", "Pacific/Auckland", "Asia/Tokyo", "Asia/Shanghai", "Asia/Kolkata", "Europe/Moscow",
         "Europe/Berlin", "Europe/London", "America/Sao_Paulo", "America/New_York", "America/Chicago",
         "America/Los_Angeles", "Pacific/Honolulu", "Pacific/Pago_Pago")
FINAL = frozenset({"delivered", "failed", "unknown", "task_created", "revoked"})  # and "sent" for an e-mail
NOT_MADE = frozenset({"failed", "unknown", "revoked"})


def zone_where_daytime(now: datetime, *, margin_h: int = 1) -> str:
    """A real zone whose local time is within 11:00-19:59 now and ``margin_h`` hours later: inside every built-in
    pack's contact hours with a margin, and past the 10:00 of the steps timed in the morning."""
    for low in (11, 9, 8):  # a wider window rather than none
        for zone in ZONES:
            hours = [(now + timedelta(hours=d)).astimezone(ZoneInfo(zone)).hour for d in range(margin_h + 1)]
            if all(low <= h < 20 for h in hours):
                return zone
    raise RuntimeError("no zone where it is daytime now")


@dataclass(frozen=True)
class LiveOptions:
    kafka: str = EMBEDDED_KAFKA
    channels_url: str = "http://127.0.0.1:8004"
    scheduler_url: str = "http://127.0.0.1:8002"
    key: str = "dev-key-tenant-a"
    tenant: str = "tenant-a"
    accounts: int = 20
    days: int = 3
    seed: int = 7
    run_id: str = ""  # names this run's accounts (default: random), so runs never meet in the system
    dpd_range: tuple[int, int] = (1, 35)  # each account's DPD in the first round, drawn uniformly
    due_dates: str = "fixed"  # or "back-dated"
    settle_timeout_s: float = 60.0
    poll_s: float = 0.5
    params: Behaviour = DEFAULT_BEHAVIOUR


@dataclass
class LiveAccount:
    account: Account
    account_id: str
    customer_id: str
    zone: str
    dpd0: int
    state: AccountState
    contact: dict[str, Any]
    seen: set[str] = field(default_factory=set)  # contact ids already fed to the behaviour model
    contacts: int = 0
    payments: int = 0
    paid_minor: int = 0
    reported_minor: int = 0  # the overdue amount of its last snapshot


def _accounts(o: LiveOptions, today: date, run_id: str) -> list[LiveAccount]:
    now = datetime.now(UTC)
    zone = zone_where_daytime(now)
    out = []
    for i in range(o.accounts):
        acc = draw_account(i, seed=o.seed, start=today)
        rng = account_rng(o.seed, i, stream=3)
        dpd0 = rng.randint(*o.dpd_range)
        dead = rng.random() < dict(o.params.delivery_failure)["sms"]
        phone = f"+86139{rng.randrange(10**4):04d}" + ("0000" if dead else f"{rng.randrange(1, 10**4):04d}")
        if phone.endswith("0000") and not dead:
            phone = phone[:-1] + "1"
        overdue = min(acc.outstanding_minor, acc.instalment_minor * (1 + dpd0 // 30))
        state = replace(initial_state(acc, today), overdue_minor=overdue, cycle_due_day=-dpd0, cycles=1,
                        next_due_day=10**6)  # no new instalment falls due during the run
        tenant = o.tenant
        contact: dict[str, Any] = {"name": CIPHER.seal(f"Sim Customer {i}", context=tenant),
                                   "time_zone": zone, "locale": acc.locale}
        if acc.has_phone:
            contact["phone"] = CIPHER.seal(phone, context=tenant)
        if acc.has_email:
            contact["email"] = CIPHER.seal(f"sim.{run_id}.{i}@example.com", context=tenant)
        if acc.has_address:
            contact["address"] = CIPHER.seal(f"Sim Road {i}, Shanghai", context=tenant)
        out.append(LiveAccount(acc, f"SIM-{run_id}-{i:05d}", f"SIMC-{run_id}-{i:05d}", zone, dpd0, state, contact))
    return out


def _snapshot(o: LiveOptions, a: LiveAccount, round_: int, today: date) -> AccountOverdueV1:
    dpd = a.dpd0 + round_
    due = today - timedelta(days=dpd if o.due_dates == "back-dated" else a.dpd0)
    acc = a.account
    return AccountOverdueV1(
        tenant=o.tenant, account_id=a.account_id, customer_id=a.customer_id, product=acc.product,
        currency=acc.currency, outstanding_minor=a.state.outstanding_minor, overdue_minor=a.state.overdue_minor,
        days_past_due=dpd, due_date=due, credit_rating=acc.rating,  # type: ignore[arg-type]
        credit_score=acc.credit_score, contact=a.contact, account_ref=acc.account_ref)


async def _send(producer: AIOKafkaProducer, topic: topics.Topic, payload: Any, *, tenant: str, customer_id: str,
                subject: str, at: datetime | None = None) -> None:
    event = build_event(topic, payload, tenant=tenant, customer_id=customer_id, source=SOURCE, subject=subject)
    if at is not None:
        event = event.model_copy(update={"time": at})
    await producer.send(topic.name, event.to_bytes(), key=message_key(tenant, customer_id))


async def _get(http: httpx.AsyncClient, url: str, **params: Any) -> Any:
    r = await http.get(url, params=params or None)
    return r.json() if r.status_code == 200 else None


def _final(c: Mapping[str, Any]) -> bool:
    return c["status"] in FINAL or (c["channel"] == "email" and c["status"] == "sent")


async def _settled(o: LiveOptions, http: httpx.AsyncClient, a: LiveAccount, dpd: int,
                   since: datetime) -> tuple[bool, list[dict[str, Any]]]:
    """Whether the scheduler shows today's DPD with no step in flight and channels every contact since ``since``
    in a final status; and those contacts."""
    treatment, contacts = await asyncio.gather(
        _get(http, f"{o.scheduler_url}/v1/treatments/{a.account_id}"),
        _get(http, f"{o.channels_url}/v1/contacts", account_id=a.account_id))
    fresh = [c for c in contacts or [] if datetime.fromisoformat(c["created_at"]) >= since]
    if treatment is None or treatment["days_past_due"] != dpd:
        return False, fresh
    in_flight = any(s["status"] == "requested" for s in treatment["steps"])
    return not in_flight and all(_final(c) for c in fresh), fresh


async def _settle(o: LiveOptions, http: httpx.AsyncClient, active: Sequence[LiveAccount], round_: int,
                  since: datetime) -> tuple[bool, dict[str, list[dict[str, Any]]]]:
    deadline = asyncio.get_running_loop().time() + o.settle_timeout_s
    while True:
        results = await asyncio.gather(*(_settled(o, http, a, a.dpd0 + round_, since) for a in active))
        made = {a.account_id: fresh for a, (_, fresh) in zip(active, results, strict=True)}
        if all(ok for ok, _ in results):
            return True, made
        if asyncio.get_running_loop().time() > deadline:
            return False, made
        await asyncio.sleep(o.poll_s)


def _local_hour(c: Mapping[str, Any], zone: str) -> int:
    return datetime.fromisoformat(c["updated_at"]).astimezone(ZoneInfo(zone)).hour


async def run_live(o: LiveOptions, *, log: Any = print) -> dict[str, Any]:
    """Run the rounds against the system; return (and log) what it did per arm."""
    run_id = o.run_id or uuid.uuid4().hex[:8]
    today = datetime.now(UTC).date()
    accounts = _accounts(o, today, run_id)
    behave = {a.account_id: account_rng(o.seed, a.account.index, stream=1) for a in accounts}
    answers = {a.account_id: account_rng(o.seed, a.account.index, stream=2) for a in accounts}
    producer = AIOKafkaProducer(bootstrap_servers=o.kafka, acks="all", linger_ms=5)
    await producer.start()
    rounds: list[dict[str, Any]] = []
    try:
        async with httpx.AsyncClient(timeout=10, headers={"Authorization": f"Bearer {o.key}"}) as http:
            for r in range(o.days):
                active = [a for a in accounts if a.state.closed is None and a.state.overdue_minor > 0]
                if not active:
                    break
                began = datetime.now(UTC)
                for a in active:
                    snapshot = _snapshot(o, a, r, today)
                    a.reported_minor = snapshot.overdue_minor
                    await _send(producer, topics.ACCOUNT_OVERDUE, snapshot, tenant=o.tenant,
                                customer_id=a.customer_id, subject=a.account_id)
                await producer.flush()
                settled, made = await _settle(o, http, active, r, began - timedelta(seconds=1))
                payments = contacts = 0
                for a in active:
                    todays = [c for c in made[a.account_id] if c["contact_id"] not in a.seen and _final(c)]
                    a.seen.update(c["contact_id"] for c in todays)
                    rng = answers[a.account_id]
                    fed = [Contact(c["channel"], _local_hour(c, a.zone), c["contact_id"],
                                   c["status"] not in NOT_MADE
                                   and reached_once_made(c["channel"], _local_hour(c, a.zone), rng, o.params))
                           for c in todays if c["status"] != "revoked"]
                    a.contacts += len(fed)
                    contacts += len(fed)
                    a.state, events = step(a.state, r, fed, behave[a.account_id], o.params)
                    for n, p in enumerate(events.payments):
                        a.payments += 1
                        a.paid_minor += p.amount_minor
                        payments += 1
                        paid = PaymentReceivedV1(
                            tenant=o.tenant, account_id=a.account_id, customer_id=a.customer_id,
                            payment_id=f"SIMP-{run_id}-{a.account.index:05d}-{r}-{n}", amount_minor=p.amount_minor,
                            currency=a.account.currency, paid_at=datetime.now(UTC))
                        await _send(producer, topics.PAYMENT_RECEIVED, paid, tenant=o.tenant,
                                    customer_id=a.customer_id, subject=a.account_id)
                await producer.flush()
                took = (datetime.now(UTC) - began).total_seconds()
                rounds.append({"round": r, "accounts": len(active), "contacts": contacts, "payments": payments,
                               "settled": settled, "seconds": round(took, 1)})
                log(f"round {r}: {len(active)} overdue accounts, {contacts} contacts, {payments} payments, "
                    f"{'settled' if settled else 'timed out'} in {took:.1f} s")
            await asyncio.sleep(1.0)  # the last payments reach the scheduler
            summary = await _summary(o, http, accounts)
    finally:
        await producer.stop()
    summary |= {"run_id": run_id, "rounds": rounds}
    for line in render_live(summary):
        log(line)
    return summary


async def _summary(o: LiveOptions, http: httpx.AsyncClient, accounts: Sequence[LiveAccount]) -> dict[str, Any]:
    treatments = await asyncio.gather(*(_get(http, f"{o.scheduler_url}/v1/treatments/{a.account_id}")
                                        for a in accounts))
    arms: dict[str, dict[str, Any]] = {}
    shown = []
    for a, t in zip(accounts, treatments, strict=True):
        arm = (t or {}).get("arm") or "unknown"
        x = arms.setdefault(arm, {"accounts": 0, "strategies": Counter(), "status": Counter(), "steps": Counter(),
                                  "step_status": Counter(), "contacts_fed": 0, "payments": 0, "paid_minor": 0})
        x["accounts"] += 1
        x["contacts_fed"] += a.contacts
        x["payments"] += a.payments
        x["paid_minor"] += a.paid_minor
        if t is not None:
            x["strategies"][t.get("strategy") or "?"] += 1
            x["status"][t["status"]] += 1
            for s in t["steps"]:
                x["steps"][s["channel"]] += 1
                x["step_status"][s["status"]] += 1
        shown.append({"account_id": a.account_id, "arm": arm, "treatment": t, "payments": a.payments,
                      "paid_minor": a.paid_minor, "reported_minor": a.reported_minor,
                      "overdue_minor_model": a.state.overdue_minor})
    return {"arms": {k: {kk: dict(vv) if isinstance(vv, Counter) else vv for kk, vv in v.items()}
                     for k, v in sorted(arms.items())}, "accounts": shown}


def render_live(summary: Mapping[str, Any]) -> list[str]:
    lines = [f"run {summary.get('run_id', '')}: what the system did, per arm (GET /v1/treatments/{{account_id}})"]
    for arm, x in summary["arms"].items():
        lines.append(f"== {arm}: {x['accounts']} accounts; strategies {x['strategies']}; treatments {x['status']}; "
                     f"steps by channel {x['steps']}, by status {x['step_status']}; contacts fed to the model "
                     f"{x['contacts_fed']}; payments {x['payments']} ({x['paid_minor'] / 100:,.2f})")
    return lines


# --- replay -----------------------------------------------------------------------------------------------------

REPLAYED: dict[str, tuple[topics.Topic, type[AccountOverdueV1] | type[PaymentReceivedV1]]] = {
    topics.ACCOUNT_OVERDUE.name: (topics.ACCOUNT_OVERDUE, AccountOverdueV1),
            topics.PAYMENT_RECEIVED.name: (topics.PAYMENT_RECEIVED, PaymentReceivedV1)}


def _seal_placeholders(contact: dict[str, Any], tenant: str) -> dict[str, Any]:
    """The log's ``pii:v1:sim:<field>-<index>`` placeholders as values sealed with the development key."""
    out = dict(contact)
    for name, value in contact.items():
        if isinstance(value, str) and value.startswith("pii:v1:sim:"):
            index = value.rsplit("-", 1)[-1]
            plain = {"name": f"Sim Customer {index}", "phone": f"+86139{int(index) % 10**8:08d}",
                     "email": f"sim.{index}@example.com", "address": f"Sim Road {index}, Shanghai"}.get(name, index)
            if name == "phone" and plain.endswith("0000"):
                plain = plain[:-1] + "1"  # not one of the sandbox's dead numbers
            out[name] = CIPHER.seal(plain, context=tenant)
    return out


def replay_events(records: Iterable[Mapping[str, Any]], *,
                  tenant: str | None = None) -> list[tuple[topics.Topic, Any, datetime]]:
    """The log's overdue notices and payments as (topic, payload), in event-time order (a stable sort: an
    account's events keep their order at equal times)."""
    chosen = sorted((r for r in records if r.get("type") in REPLAYED), key=lambda r: r["event_time"])
    out: list[tuple[topics.Topic, Any, datetime]] = []
    for r in chosen:
        topic, model = REPLAYED[r["type"]]
        data = dict(r["payload"])
        data["tenant"] = tenant or data["tenant"]
        if "contact" in data:
            data["contact"] = _seal_placeholders(data["contact"], data["tenant"])
        out.append((topic, model.model_validate(data), datetime.fromisoformat(r["event_time"])))
    return out


async def replay(records: Iterable[Mapping[str, Any]], *, kafka: str = EMBEDDED_KAFKA, tenant: str | None = None,
                 limit: int | None = None, rate: float | None = None, log: Any = print) -> int:
    """Publish the log's overdue notices and payments in event-time order (each CloudEvent's ``time`` is the
    recorded event time); ``rate``: at most that many events a second."""
    events = replay_events(records, tenant=tenant)[:limit]
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", linger_ms=5)
    await producer.start()
    try:
        for n, (topic, payload, at) in enumerate(events, start=1):
            await _send(producer, topic, payload, tenant=payload.tenant, customer_id=payload.customer_id,
                        subject=payload.account_id, at=at)
            if rate:
                await asyncio.sleep(1 / rate)
            if n % 10_000 == 0:
                log(f"{n} events published")
        await producer.flush()
    finally:
        await producer.stop()
    return len(events)

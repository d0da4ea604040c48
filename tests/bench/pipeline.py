"""`make bench`: end-to-end throughput and latency of the five-service pipeline, and the physical
baseline measured in the same run on the same broker.

Pipeline: publish AccountOverdue -> segmentation -> scheduler -> compliance -> channels (SMS sandbox)
-> ContactOutcome, i.e. 4 consume/produce hops with their database transactions.
Baseline: the same number of same-size messages through 4 bare relay processes (consume, produce,
commit; no database, no logic) on the same broker.

Run 1 pushes N events as fast as possible (throughput); run 2 paces N/4 events at half the measured
throughput (latency under load). CPU seconds per process show which stage bounds the pipeline.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from devstack.stack import LocalStack, Ports  # noqa: E402
from shared.contracts import message_key, topics  # noqa: E402
from shared.contracts.events import AccountOverdueV1  # noqa: E402
from shared.crypto import PiiCipher  # noqa: E402
from shared.messaging import build_event  # noqa: E402
from shared.settings import DEV_PII_KEYS  # noqa: E402

HOPS = 4
ZONES = ["Asia/Shanghai", "Asia/Tokyo", "Europe/London", "America/New_York", "America/Los_Angeles",
         "Pacific/Auckland", "Asia/Kolkata", "Europe/Berlin", "America/Sao_Paulo", "Pacific/Honolulu"]


@dataclass
class RunResult:
    events: int
    seconds: float
    latencies: list[float]
    # median seconds from publish until each topic carried the event (per-hop profile)
    hops: dict[str, float] | None = None

    @property
    def throughput(self) -> float:
        return self.events / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def daytime_zones() -> list[str]:
    """Zones where every customer is inside contact hours for the next two hours."""
    now = datetime.now(UTC)
    zones = [z for z in ZONES if all(9 <= (now + timedelta(hours=h)).astimezone(ZoneInfo(z)).hour < 21
                                     for h in (0, 2))]
    if not zones:
        raise SystemExit("no daytime zone found")
    return zones


_NUMBERS_USED = 0  # phone numbers handed out so far (the data dir, and so the ledger, is new for every bench)


def make_events(n: int, run: str) -> list[tuple[str, bytes, bytes]]:
    """Pre-built (account_id, key, value): standard-segment customers, each with a phone of their own (one
    person's second SMS of a day would be deferred by HOUSE-DUP) -> SMS reminders."""
    cipher = PiiCipher(DEV_PII_KEYS, "dev1")
    zones = daytime_zones()
    tenant = "bench"
    name = cipher.seal("压测客户", context=tenant)
    global _NUMBERS_USED
    base, _NUMBERS_USED = _NUMBERS_USED, _NUMBERS_USED + n  # never the same number twice in one bench process
    out = []
    for i in range(n):
        tel = cipher.seal(f"+86139{base + i:08d}", context=tenant)
        account_id = f"B{run}-{i:07d}"
        payload = AccountOverdueV1(
            tenant=tenant, account_id=account_id, customer_id=f"C{run}-{i:07d}", product="credit-card",
            currency="CNY", outstanding_minor=1_000_000, overdue_minor=100_000 + i, days_past_due=1 + i % 15,
            due_date=date.today() - timedelta(days=1 + i % 15), credit_rating="C",
            contact={"name": name, "phone": tel, "time_zone": zones[i % len(zones)], "locale": "zh-CN"})
        event = build_event(topics.ACCOUNT_OVERDUE, payload, tenant=tenant, customer_id=payload.customer_id,
                            source="urn:bench", subject=account_id)
        out.append((account_id, message_key(tenant, payload.customer_id), event.to_bytes()))
    return out


async def ready_consumer(bootstrap: str, *topic_names: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(*topic_names, bootstrap_servers=bootstrap, group_id=f"bench-{uuid.uuid4().hex[:8]}",
                                enable_auto_commit=False, auto_offset_reset="latest", fetch_max_wait_ms=20,
                                session_timeout_ms=10_000, rebalance_timeout_ms=3_000, heartbeat_interval_ms=1_000)
    await consumer.start()
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=200)
    await consumer.seek_to_end()
    return consumer


async def measure(bootstrap: str, source: str, sink: str, events: list[tuple[str, bytes, bytes]], *,
                  id_of, rate: float | None, timeout_s: float,  # type: ignore[no-untyped-def]
                  trace: tuple[str, ...] = ()) -> RunResult:
    consumer = await ready_consumer(bootstrap, sink, *trace)
    seen_at: dict[str, dict[str, float]] = {t: {} for t in trace}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2, max_batch_size=256 * 1024)
    await producer.start()
    sent: dict[str, float] = {}
    done: dict[str, float] = {}
    wanted = {account_id for account_id, _, _ in events}

    async def publish() -> None:
        started = time.perf_counter()
        for i, (account_id, key, value) in enumerate(events):
            if rate is not None:
                delay = started + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            sent[account_id] = time.perf_counter()
            await producer.send(source, value, key=key)
        await producer.flush()

    async def collect() -> None:
        deadline = time.perf_counter() + timeout_s
        while len(done) < len(wanted) and time.perf_counter() < deadline:
            for records in (await consumer.getmany(timeout_ms=200, max_records=5000)).values():
                now = time.perf_counter()
                for r in records:
                    if r.topic in seen_at:
                        data = orjson.loads(r.value)["data"]
                        account = data.get("account_id") or data.get("request", {}).get("account_id")
                        seen_at[r.topic].setdefault(account, now)
                        if r.topic != sink:
                            continue
                    account_id = id_of(r.value)
                    if account_id in wanted and account_id not in done:
                        done[account_id] = now

    begin = time.perf_counter()
    await asyncio.gather(publish(), collect())
    await producer.stop()
    await consumer.stop()
    if len(done) < len(wanted):
        print(f"  WARNING: {len(wanted) - len(done)} of {len(wanted)} events did not arrive within {timeout_s}s")
    end = max(done.values()) if done else time.perf_counter()
    hops = {t: statistics.median(at[a] - sent[a] for a in at if a in sent) for t, at in seen_at.items() if at}
    return RunResult(len(done), end - begin, [done[a] - sent[a] for a in done], hops or None)


def outcome_account(value: bytes) -> str:
    event = orjson.loads(value)
    return str(event["data"]["account_id"]) if event["data"].get("outcome") == "sent" else ""


def baseline_account(value: bytes) -> str:
    return str(orjson.loads(value)["subject"])


def cpu_seconds(procs: dict[str, psutil.Process]) -> dict[str, float]:
    own = psutil.Process().cpu_times()
    out = {"bench client + smtp sink": own.user + own.system}
    for name, proc in procs.items():
        try:
            members = [proc, *proc.children(recursive=True)]
            out[name] = sum(p.cpu_times().user + p.cpu_times().system for p in members)
        except psutil.Error:
            out[name] = 0.0
    return out


def process_map(stack: LocalStack) -> dict[str, psutil.Process]:
    procs = {name: psutil.Process(p.pid) for name, p in stack.procs.items()}
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "tansu" in cmd and "broker" in cmd and f":{stack.ports.kafka}" in cmd:  # this stack's, not a stray one
            procs["broker"] = proc
        elif proc.info["name"] == "postgres" and str(stack.data_dir) in cmd:
            procs["postgres"] = proc
    return procs


async def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        await admin.create_topics([NewTopic(n, partitions, 1) for n in names if n not in existing])
    finally:
        await admin.close()


def run_baseline(bootstrap: str, n: int, value_size: int, partitions: int) -> RunResult:
    run = uuid.uuid4().hex[:6]
    names = [f"bench.{run}.hop{i}" for i in range(HOPS + 1)]
    asyncio.run(create_topics(bootstrap, names, partitions))
    hops = [subprocess.Popen([sys.executable, str(Path(__file__).with_name("relay_hop.py")), "--bootstrap", bootstrap,
                              "--source", names[i], "--target", names[i + 1], "--group", f"bench-relay-{run}-{i}"])
            for i in range(HOPS)]
    try:
        time.sleep(6)  # let the relays join their groups
        pad = "x" * max(value_size - 80, 0)
        events = [(f"R{i:07d}", f"bench:C{i}".encode(),
                   orjson.dumps({"subject": f"R{i:07d}", "pad": pad})) for i in range(n)]
        return asyncio.run(measure(bootstrap, names[0], names[-1], events, id_of=baseline_account, rate=None,
                                   timeout_s=300))
    finally:
        for hop in hops:
            hop.terminate()
        for hop in hops:
            hop.wait(10)


def start_profilers(stack: LocalStack, folder: Path) -> list[subprocess.Popen[bytes]]:
    """py-spy (sampling, native-free) on each service; speedscope files show the hot stacks."""
    folder.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    return [subprocess.Popen([str(spy), "record", "--pid", str(proc.pid), "--rate", "100", "--format", "raw",
                              "--output", str(folder / f"{name}.txt")], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
            for name, proc in stack.procs.items() if name != "sms"]


def batch_sizes(stack: LocalStack) -> dict[str, float]:
    """Average events per handled batch, per consumer group and topic, from the services' metrics."""
    import httpx

    sizes: dict[str, float] = {}
    for service in ("segmentation", "scheduler", "compliance", "channels"):
        text = httpx.get(f"{stack.url(service)}/metrics", timeout=5).text
        consumed: dict[str, float] = {}
        batches: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("events_consumed_total{"):
                consumed[line.split('topic="')[1].split('"')[0]] = float(line.rsplit(" ", 1)[1])
            elif line.startswith("event_handler_duration_seconds_count{"):
                batches[line.split('topic="')[1].split('"')[0]] = float(line.rsplit(" ", 1)[1])
        for topic, count in consumed.items():
            if batches.get(topic):
                sizes[f"{service} <- {topic}"] = count / batches[topic]
    return sizes


def report_run(label: str, r: RunResult) -> str:
    return (f"{label}: {r.events} events in {r.seconds:.1f} s = {r.throughput:,.0f} events/s; "
            f"latency p50 {r.pct(0.5) * 1000:,.0f} ms, p99 {r.pct(0.99) * 1000:,.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".bench")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--target-rate", type=float, default=1000.0,
                        help="the throughput target; a paced run at half of it reports latency")
    parser.add_argument("--profile", type=Path, default=None,
                        help="record a py-spy profile of every service during the full-speed run into this folder")
    args = parser.parse_args()
    import shutil

    shutil.rmtree(args.data_dir, ignore_errors=True)
    stack = LocalStack(args.data_dir, Ports.free(), partitions=args.partitions,
                       env={"LOG_LEVEL": "WARNING", "APP_ENV": "dev"})
    print(f"machine: {platform.processor() or platform.machine()}, {psutil.cpu_count()} cores, "
          f"{psutil.virtual_memory().total / 2**30:.0f} GiB, load {os.getloadavg()[0]:.2f}; "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    try:
        stack.start_infra()
        stack.start_apps()
        stack.wait_ready(timeout_s=120)
        assert stack.kafka
        procs = process_map(stack)

        # warm-up: JIT-free Python still has caches, pools and group joins to settle
        asyncio.run(measure(stack.kafka, topics.ACCOUNT_OVERDUE.name, topics.CONTACT_OUTCOME.name,
                            make_events(200, "warm"), id_of=outcome_account, rate=None, timeout_s=120))
        events = make_events(args.events, uuid.uuid4().hex[:6])
        value_size = int(statistics.mean(len(v) for _, _, v in events))
        cpu_before = cpu_seconds(procs)
        spies = start_profilers(stack, args.profile) if args.profile else []
        full = asyncio.run(measure(stack.kafka, topics.ACCOUNT_OVERDUE.name, topics.CONTACT_OUTCOME.name, events,
                                   id_of=outcome_account, rate=None, timeout_s=600))
        trace = (topics.ACCOUNT_OVERDUE.name, topics.ACCOUNT_SEGMENTED.name, topics.CONTACT_REQUESTED.name,
                 topics.CONTACT_APPROVED.name, topics.CONTACT_OUTCOME.name)
        cpu_after = cpu_seconds(procs)
        for spy in spies:
            spy.send_signal(2)
        for spy in spies:
            spy.wait(60)
        half_rate = full.throughput / 2
        paced = asyncio.run(measure(stack.kafka, topics.ACCOUNT_OVERDUE.name, topics.CONTACT_OUTCOME.name,
                                    make_events(max(args.events // 4, 500), uuid.uuid4().hex[:6]),
                                    id_of=outcome_account, rate=half_rate, timeout_s=600, trace=trace))
        # the target's own yardstick: half of 1,000 events/s
        target = asyncio.run(measure(stack.kafka, topics.ACCOUNT_OVERDUE.name, topics.CONTACT_OUTCOME.name,
                                     make_events(max(args.events // 4, 500), uuid.uuid4().hex[:6]),
                                     id_of=outcome_account, rate=args.target_rate / 2, timeout_s=600))
        batches = batch_sizes(stack)
        stack.stop_apps()
        baseline = None if args.skip_baseline else run_baseline(stack.kafka, args.events, value_size, args.partitions)
    finally:
        stack.stop()

    print(report_run("pipeline, full speed  ", full))
    print(report_run(f"pipeline, {half_rate:,.0f}/s paced", paced))
    print(report_run(f"pipeline, {args.target_rate / 2:,.0f}/s paced", target))
    if baseline:
        print(report_run("baseline (bare relay)", baseline))
        print(f"ratio pipeline/baseline throughput: {full.throughput / baseline.throughput:.2f} "
              f"({HOPS} hops, {args.events} messages of ~{value_size} bytes, {args.partitions} partitions)")
    if paced.hops:
        print("median time from publish until the event was on each topic (paced run):")
        for topic, seconds in paced.hops.items():
            print(f"  {topic:<40} {seconds * 1000:7.0f} ms")
    print("average events per consumer batch (one transaction each):")
    for name, size in batches.items():
        print(f"  {name:<52} {size:7.1f}")
    print("CPU seconds per 1,000 events during the full-speed run (where the time goes):")
    spent = {k: cpu_after[k] - cpu_before.get(k, 0.0) for k in cpu_after}
    for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<26} {seconds / max(full.events, 1) * 1000:6.2f} s   ({seconds:6.1f} s total)")


if __name__ == "__main__":
    main()

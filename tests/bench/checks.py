"""`make bench-checks`: latency of compliance's `POST /v1/checks` (an agent's or dialer's "may I call now?")
at a fixed request rate, with the contact ledger holding a million attempts.

The compliance service runs as in `make run` (its own process, the embedded PostgreSQL). The ledger is
filled with N attempts (default 1,000,000) spread over 100,000 customers and the last 30 days, with the
borrower and contact-point keys the service would have written; then requests for random customers of
that population are sent open-loop at the target rate (each one at its scheduled instant, whatever the
previous answers did, so a slow answer delays the latency figures, not the load). Latency is measured from
the scheduled instant. CPU seconds of the service, PostgreSQL and this client show what bounds it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import platform
import random
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from devstack.stack import LocalStack, Ports  # noqa: E402
from shared.identity import IdentityKeys  # noqa: E402
from shared.settings import DEV_IDENTITY_KEY  # noqa: E402

TENANT, KEY = "tenant-a", "dev-key-tenant-a"
ZONES = ("Asia/Shanghai", "Asia/Tokyo", "Europe/London", "America/New_York", "Asia/Kolkata")


async def seed_ledger(database_url: str, attempts: int, customers: int) -> float:
    """Fill compliance.contact_ledger with ``attempts`` attempts (one row each: approved, then its outcome) in SQL
    (generate_series); returns seconds."""
    identity = IdentityKeys(base64.b64decode(DEV_IDENTITY_KEY))
    started = time.perf_counter()
    keys = [(i, identity.borrower_key(national_id=None, phone=phone(i)),
             identity.contact_point_key(channel="call", destination=phone(i))) for i in range(customers)]
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        async with conn.transaction():
            await conn.execute("CREATE TEMP TABLE bench_keys (n int PRIMARY KEY, borrower text, point text)")
            await conn.copy_records_to_table("bench_keys", records=keys)
            await conn.execute("""
                INSERT INTO compliance.contact_ledger
                    (tenant, borrower_key, customer_id, account_id, contact_id, channel, destination_key,
                     direction, outcome, occurred_at, approved_at, outcome_at, recorded_at)
                SELECT $1, k.borrower, 'BC-' || k.n, 'BA-' || k.n, 'bench-' || g,
                       (ARRAY['sms', 'call', 'call', 'email'])[1 + g % 4], k.point, 'outbound',
                       (ARRAY['approved', 'sent', 'delivered', 'no_answer', 'connected'])[1 + g % 5],
                       t.at, t.at, CASE WHEN g % 5 = 0 THEN NULL ELSE t.at + interval '5 seconds' END, now()
                FROM generate_series(1, $2::int) AS g JOIN bench_keys k ON k.n = g % $3::int
                CROSS JOIN LATERAL (SELECT now() - (g % 2592000) * interval '1 second' AS at) AS t
            """, TENANT, attempts, customers)
        await conn.execute("ANALYZE compliance.contact_ledger")
    finally:
        await conn.close()
    return time.perf_counter() - started


def phone(i: int) -> str:
    return f"+86138{i:08d}"


async def drive(url: str, rate: float, seconds: float, customers: int) -> tuple[list[float], int, float]:
    """Open-loop load: request i is sent at start + i / rate. Returns latencies (s), errors, elapsed."""
    rng = random.Random(7)
    total = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30,
                                 headers={"Authorization": f"Bearer {KEY}"}) as client:
        async def one(at: float, body: dict[str, object]) -> None:
            nonlocal errors
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                response = await client.post("/v1/checks", json=body)
                if response.status_code != 200:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append(time.perf_counter() - at)

        start = time.perf_counter() + 0.5
        tasks = []
        for i in range(total):
            n = rng.randrange(customers)
            body = {"account_id": f"BA-{n}", "customer_id": f"BC-{n}", "channel": "call",
                    "time_zone": ZONES[n % len(ZONES)], "destination": phone(n), "automated": False}
            tasks.append(asyncio.create_task(one(start + i / rate, body)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return latencies, errors, elapsed


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--attempts", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--light-rate", type=float, default=50.0,
                        help="a second run at a rate the service keeps up with: the latency an agent sees")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".bench-checks")
    args = parser.parse_args()
    shutil.rmtree(args.data_dir, ignore_errors=True)
    stack = LocalStack(args.data_dir, Ports.free(), env={"LOG_LEVEL": "WARNING", "APP_ENV": "dev"})
    print(f"machine: {platform.processor() or platform.machine()}, {psutil.cpu_count()} cores, "
          f"{psutil.virtual_memory().total / 2**30:.0f} GiB, load {os.getloadavg()[0]:.2f}; "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    try:
        stack.start_infra()
        assert stack.database_url
        seeded = asyncio.run(seed_ledger(stack.database_url, args.attempts, args.customers))
        print(f"ledger: {args.attempts:,} attempts of {args.customers:,} customers seeded in {seeded:.0f} s")
        stack.start_apps(("compliance",))
        stack.wait_ready(timeout_s=120)
        service = psutil.Process(stack.procs["compliance"].pid)
        postgres = [p for p in psutil.process_iter(["name", "cmdline"])
                    if p.info["name"] == "postgres" and str(stack.data_dir) in " ".join(p.info["cmdline"] or [])]
        url = stack.url("compliance")
        asyncio.run(drive(url, rate=min(args.rate, 200.0), seconds=2, customers=args.customers))  # warm-up

        def cpu() -> dict[str, float]:
            def of(ps: list[psutil.Process]) -> float:
                total = 0.0
                for p in ps:
                    try:
                        members = [p, *p.children(recursive=True)]
                        total += sum(m.cpu_times().user + m.cpu_times().system for m in members)
                    except psutil.Error:
                        pass
                return total
            own = psutil.Process().cpu_times()
            return {"compliance": of([service]), "postgres": of(postgres), "bench client": own.user + own.system}

        light, light_errors, light_elapsed = asyncio.run(drive(url, args.light_rate, args.seconds, args.customers))
        before = cpu()
        latencies, errors, elapsed = asyncio.run(drive(url, args.rate, args.seconds, args.customers))
        after = cpu()
    finally:
        stack.stop()
    print(f"POST /v1/checks, {args.light_rate:,.0f}/s open-loop for {args.seconds:.0f} s: {len(light):,} requests in "
          f"{light_elapsed:.1f} s, {light_errors} errors; latency p50 {pct(light, 50) * 1000:,.1f} ms, "
          f"p99 {pct(light, 99) * 1000:,.1f} ms")
    done = len(latencies)
    print(f"POST /v1/checks, {args.rate:,.0f}/s open-loop for {args.seconds:.0f} s: {done:,} requests in "
          f"{elapsed:.1f} s = {done / elapsed:,.0f}/s, {errors} errors")
    print(f"latency from the scheduled instant: p50 {pct(latencies, 50) * 1000:,.1f} ms, "
          f"p99 {pct(latencies, 99) * 1000:,.1f} ms, max {max(latencies) * 1000:,.1f} ms, "
          f"mean {statistics.mean(latencies) * 1000:,.1f} ms")
    print("CPU seconds per 1,000 checks:")
    for name in after:
        print(f"  {name:<14} {(after[name] - before[name]) / max(done, 1) * 1000:6.2f} s")


if __name__ == "__main__":
    main()

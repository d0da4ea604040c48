"""python -m simulator.simulate {portfolio,history,dataset,train,compare,live,replay} (docs/simulator.md).

    python -m simulator.simulate history --accounts 50000 --days 60 --seed 7 --out events.jsonl
    python -m simulator.simulate dataset --events events.jsonl --out dataset.jsonl
    python -m simulator.simulate train --data dataset.jsonl --out scorecard.json
    python -m simulator.simulate compare --accounts 50000 --days 60 --seed 7 \\
        --challenger email-first:simulator/strategies/email-first.json:5000 --out report.json
    python -m simulator.simulate live --accounts 20 --days 3        # against `make run`
    python -m simulator.simulate replay --events events.jsonl --tenant tenant-a
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from shared.settings import EMBEDDED_KAFKA
from simulator import dataset, history, portfolio

DEFAULT_START = date(2025, 1, 1)


def write_jsonl(records: Iterable[dict[str, Any]], out: Path) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with out.open("wb") as f:
        for rec in records:
            f.write(orjson.dumps(rec))
            f.write(b"\n")
            n += 1
    return n


def read_jsonl(path: Path) -> Iterable[dict[str, Any]]:
    with path.open("rb") as f:
        for line in f:
            if line.strip():
                yield orjson.loads(line)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--accounts", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--start", type=date.fromisoformat, default=DEFAULT_START,
                   help="first day of the observation window (default 2025-01-01)")
    p.add_argument("--burn-in-days", type=int, default=90,
                   help="days simulated (and logged) before --start, so features have a history (default 90)")
    p.add_argument("--out", type=Path, required=True)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m simulator.simulate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    port = sub.add_parser("portfolio", help="write the portfolio's accounts (with their latent traits) as JSON Lines")
    _common(port)
    hist = sub.add_parser("history", help="simulate the portfolio and write the event log as JSON Lines")
    _common(hist)
    hist.add_argument("--days", type=int, default=60, help="days in the observation window (default 60)")
    hist.add_argument("--policy", choices=sorted(history.POLICIES), default="timeline")
    data = sub.add_parser("dataset", help="derive a training set from an event log")
    data.add_argument("--events", type=Path, required=True)
    data.add_argument("--out", type=Path, required=True)
    data.add_argument("--every", type=int, default=7, help="observe at DPD 1, 1 + every, ... (default 7)")
    data.add_argument("--horizon-days", type=int, default=30)
    sub.add_parser("train", help="train a scorecard: python -m services.segmentation.training's arguments",
                   add_help=False)
    comp = sub.add_parser(
        "compare", help="compare strategies offline: the platform's segmentation, assignment and interpreter decide "
                        "the contacts; print the experiment report (text; JSON with --out)")
    comp.add_argument("--accounts", type=int, default=10_000)
    comp.add_argument("--seed", type=int, default=7)
    comp.add_argument("--start", type=date.fromisoformat, default=DEFAULT_START,
                      help="the experiment's first day (default 2025-01-01)")
    comp.add_argument("--days", type=int, default=60, help="days in which accounts enter the experiment (default 60)")
    comp.add_argument("--burn-in-days", type=int, default=90,
                      help="lead-in before --start under the champion, so that a stock of delinquencies exists "
                           "(default 90)")
    comp.add_argument("--follow-up-days", type=int, default=0,
                      help="days simulated after the entry window (no new entries) so that horizons mature "
                           "(default 0)")
    comp.add_argument("--champion", default="builtin@1", help="builtin@1 (default) or a strategy document (JSON)")
    comp.add_argument("--challenger", action="append", default=[], metavar="[ARM:]SOURCE[:SHARES]",
                      help="a challenger: an arm name (default: the file's stem), a strategy document or 'builtin' "
                           "(a copy under the arm's name), and its share in basis points, '5000' in every segment "
                           "or 'prime=2000,standard=5000' (default: an equal split with the champion); repeatable")
    comp.add_argument("--experiment", default=None, help="the experiment's name: it seeds the assignment hash "
                                                          "(default sim-<arms>)")
    comp.add_argument("--out", type=Path, default=None, help="also write the report as JSON")
    live = sub.add_parser("live", help="drive the running system (make run) round by round: snapshots and "
                                       "payments on Kafka, contacts read from channels, treatments per arm at the end")
    live.add_argument("--kafka", default=EMBEDDED_KAFKA)
    live.add_argument("--channels-url", default="http://127.0.0.1:8004")
    live.add_argument("--scheduler-url", default="http://127.0.0.1:8002")
    live.add_argument("--key", default="dev-key-tenant-a", help="an API key of the tenant (default dev-key-tenant-a)")
    live.add_argument("--tenant", default="tenant-a")
    live.add_argument("--accounts", type=int, default=20)
    live.add_argument("--days", type=int, default=3, help="rounds, one simulated day each (default 3)")
    live.add_argument("--seed", type=int, default=7)
    live.add_argument("--due-dates", choices=("back-dated", "fixed"), default="fixed",
                      help="back-dated: due date = today - DPD each round (timed steps fall today; each round is a "
                           "new cycle for the scheduler); fixed: back-dated once, one cycle")
    live.add_argument("--settle-timeout", type=float, default=60.0, help="seconds to wait for a round to settle")
    live.add_argument("--out", type=Path, default=None, help="also write the summary as JSON")
    rep = sub.add_parser("replay", help="publish a recorded event log (history's output) to Kafka in event-time order")
    rep.add_argument("--events", type=Path, required=True)
    rep.add_argument("--kafka", default=EMBEDDED_KAFKA)
    rep.add_argument("--tenant", default=None, help="publish under this tenant instead of the log's")
    rep.add_argument("--limit", type=int, default=None, help="at most this many events (the earliest)")
    rep.add_argument("--rate", type=float, default=None, help="at most this many events a second")
    return p


def _compare(args: argparse.Namespace) -> int:
    from services.scheduler.domain.strategies.experiments import BASIS
    from simulator import strategies

    champion = strategies.load_strategy(args.champion)
    default_share = BASIS // (len(args.challenger) + 1)
    challengers = [strategies.parse_challenger(c, default_share=default_share) for c in args.challenger]
    if not challengers:
        raise SystemExit("give at least one --challenger")
    name = args.experiment or "sim-" + "-".join(arm for arm, _, _ in challengers)
    exp = strategies.experiment(champion, challengers, name)
    setup = strategies.Setup(accounts=args.accounts, seed=args.seed, start=args.start, days=args.days,
                             burn_in_days=args.burn_in_days, follow_up_days=args.follow_up_days)
    result = strategies.compare(setup, exp)
    print(strategies.render_text(result), end="")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(orjson.dumps(strategies.to_json(result), option=orjson.OPT_INDENT_2))
    return sum(a.accounts for a in result.arms)


def _live(args: argparse.Namespace) -> int:
    import asyncio

    from simulator import live

    options = live.LiveOptions(kafka=args.kafka, channels_url=args.channels_url.rstrip("/"),
                               scheduler_url=args.scheduler_url.rstrip("/"), key=args.key, tenant=args.tenant,
                               accounts=args.accounts, days=args.days, seed=args.seed, due_dates=args.due_dates,
                               settle_timeout_s=args.settle_timeout)
    summary = asyncio.run(live.run_live(options))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    return len(summary["accounts"])


def _replay(args: argparse.Namespace) -> int:
    import asyncio

    from simulator import live

    return asyncio.run(live.replay(read_jsonl(args.events), kafka=args.kafka, tenant=args.tenant, limit=args.limit,
                                   rate=args.rate))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:
        from services.segmentation.training.__main__ import main as train_main  # needs the training group

        return train_main(argv[1:])
    args = parser().parse_args(argv)
    began = time.perf_counter()
    if args.command == "portfolio":
        start = history.simulation_start(args.start, args.burn_in_days)
        n = write_jsonl((a.to_dict() for a in portfolio.generate(args.accounts, seed=args.seed, start=start)),
                        args.out)
    elif args.command == "history":
        n = write_jsonl(history.run(args.accounts, seed=args.seed, start=args.start, days=args.days,
                                    burn_in_days=args.burn_in_days, policy=args.policy), args.out)
    elif args.command in ("compare", "live", "replay"):
        n = {"compare": _compare, "live": _live, "replay": _replay}[args.command](args)
        what = {"compare": "accounts in the experiment", "live": "accounts", "replay": "events published"}
        print(f"{n} {what[args.command]} in {time.perf_counter() - began:.1f} s", file=sys.stderr)
        return 0
    else:
        rows = dataset.build(read_jsonl(args.events), every=args.every, horizon_days=args.horizon_days)
        n = write_jsonl(rows, args.out)
    print(f"{args.out}: {n} records in {time.perf_counter() - began:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""python -m simulator.simulate {portfolio,history,dataset,train} (docs/simulator.md).

    python -m simulator.simulate history --accounts 50000 --days 60 --seed 7 --out events.jsonl
    python -m simulator.simulate dataset --events events.jsonl --out dataset.jsonl
    python -m simulator.simulate train --data dataset.jsonl --out scorecard.json
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
    return p


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
    else:
        rows = dataset.build(read_jsonl(args.events), every=args.every, horizon_days=args.horizon_days)
        n = write_jsonl(rows, args.out)
    print(f"{args.out}: {n} records in {time.perf_counter() - began:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

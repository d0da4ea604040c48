"""python -m services.segmentation.training --data dataset.jsonl --out scorecard.json (docs/scoring.md)."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from services.segmentation.training.fit import Options, train


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The dataset: one JSON object per line with ``account_id``, ``observed_at``, ``features``, ``label``."""
    rows = []
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                row = json.loads(line)
                if not {"account_id", "observed_at", "features", "label"} <= row.keys() or row["label"] not in (0, 1):
                    raise SystemExit(f"{path}:{number}: needs account_id, observed_at, features and a 0/1 label")
                rows.append(row)
    return rows


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m services.segmentation.training", description=__doc__)
    p.add_argument("--data", type=Path, required=True, help="dataset JSON Lines (python -m simulator.simulate dataset)")
    p.add_argument("--out", type=Path, required=True, help="where to write the scorecard JSON")
    p.add_argument("--version", default="custom", help="the scorecard's version string")
    p.add_argument("--split", choices=("time", "account"), default="time")
    p.add_argument("--held-out", type=float, default=0.3, help="share of rows held out (default 0.3)")
    p.add_argument("--base-points", type=float, default=600.0)
    p.add_argument("--base-odds", type=float, default=1.0, help="cure odds at --base-points (default 1:1)")
    p.add_argument("--pdo", type=float, default=20.0, help="points to double the odds")
    p.add_argument("--c", type=float, default=1.0, help="inverse L2 strength of the logistic regression")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    rows = read_rows(args.data)
    digest = hashlib.sha256(args.data.read_bytes()).hexdigest()
    opts = Options(base_points=args.base_points, base_odds=args.base_odds, pdo=args.pdo, split=args.split,
                   held_out=args.held_out, c=args.c, version=args.version)
    doc = train(rows, opts, provenance={"dataset_sha256": digest})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    m = doc["metrics"]["held_out"]
    print(f"{args.out}: {len(rows)} rows; held-out ({m['rows']} rows, cure rate {m['cure_rate']}): "
          f"AUC {m['auc']}, KS {m['ks']}, Gini {m['gini']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Fit a scorecard on a dataset (rows of ``features`` and ``label``) and measure it on held-out rows.

Steps: split train / held-out (by observation time by default: the held-out rows are the latest
``held_out`` share, an out-of-time test, the way a scorecard is used on what comes after it; or by
account, a hash of the account id, when the rows span too short a time); bin every feature on the
training rows (``binning``); fit a logistic regression of the label on the bins' WoE (scikit-learn,
lbfgs, L2 with ``C``); drop any feature whose coefficient is not positive (on WoE a negative one only
comes from collinearity and would make the points contradict the bins) and refit; scale to points;
score the held-out rows with the runtime scorer itself and report AUC, KS, Gini and a calibration table.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve

from services.segmentation.domain.scorecard import FEATURES, FORMAT, Scorecard
from services.segmentation.training.binning import Binned, categorical_bins, numeric_bins, ordinal_bins

CATEGORICAL = ("product",)
ORDINAL = {"rating": ("A", "B", "C", "D", "E")}

# (code, text when a high value costs points, text when a low value does, text when missing)
REASONS: dict[str, tuple[str, str, str, str]] = {
    "rating": ("RATING", "Credit rating is weak", "Credit rating is weak", "No credit rating on file"),
    "credit_score": ("SCORE", "Credit score is high", "Credit score is low", "No credit score on file"),
    "days_past_due": ("DPD", "Many days past due", "Few days past due", "Days past due unknown"),
    "overdue_ratio": ("OVERDUE_SHARE", "Overdue amount is a large share of the balance",
                      "Overdue amount is a small share of the balance", "Balance unknown"),
    "overdue_minor": ("OVERDUE_AMOUNT", "Overdue amount is large", "Overdue amount is small", "Overdue amount unknown"),
    "product": ("PRODUCT", "Product type cures less often", "Product type cures less often", "Product unknown"),
    "payments_last_30d": ("PAY_30D", "Many payments in the last 30 days", "Few or no payments in the last 30 days",
                          "Payment history unknown"),
    "payments_last_90d": ("PAY_90D", "Many payments in the last 90 days", "Few or no payments in the last 90 days",
                          "Payment history unknown"),
    "previous_cures": ("CURES", "Many earlier overdue spells", "Few earlier overdue spells paid off",
                       "Earlier overdue spells unknown"),
    "tenure_days": ("TENURE", "Long time on book", "Short time on book", "Account opening date unknown"),
}


@dataclass(frozen=True)
class Options:
    base_points: float = 600.0
    base_odds: float = 1.0
    pdo: float = 20.0
    split: str = "time"  # or "account"
    held_out: float = 0.3
    c: float = 1.0
    quantiles: int = 20
    max_bins: int = 8
    min_share: float = 0.05
    version: str = "custom"
    horizon_days: int = 30


def split_rows(rows: Sequence[dict[str, Any]], how: str, held_out: float) -> tuple[list[int], list[int]]:
    """Indices of the training and held-out rows."""
    if how == "time":
        times = sorted(r["observed_at"] for r in rows)
        cutoff = times[min(int(len(times) * (1 - held_out)), len(times) - 1)]
        train = [i for i, r in enumerate(rows) if r["observed_at"] < cutoff]
        test = [i for i, r in enumerate(rows) if r["observed_at"] >= cutoff]
    elif how == "account":
        def bucket(account_id: str) -> float:
            return int(hashlib.sha256(account_id.encode()).hexdigest()[:8], 16) / 2**32

        test = [i for i, r in enumerate(rows) if bucket(r["account_id"]) < held_out]
        train = [i for i, r in enumerate(rows) if bucket(r["account_id"]) >= held_out]
    else:
        raise ValueError(f"unknown split {how!r}: time or account")
    if not train or not test:
        raise ValueError("the split left no training or no held-out rows")
    return train, test


def ks_statistic(y: np.ndarray, score: np.ndarray) -> float:
    """Kolmogorov-Smirnov: the largest gap between the cured and not-cured score distributions."""
    fpr, tpr, _ = roc_curve(y, score)
    return float(np.max(tpr - fpr))


def calibration(y: np.ndarray, points: np.ndarray, probability: np.ndarray, groups: int = 10) -> list[dict[str, Any]]:
    """Predicted vs observed cure rate by score decile (lowest scores first; ties kept together)."""
    order = np.argsort(points, kind="stable")
    table = []
    for i, part in enumerate(np.array_split(order, groups), start=1):
        if len(part) == 0:
            continue
        table.append({"decile": i, "rows": len(part), "points_min": int(points[part].min()),
                      "points_max": int(points[part].max()),
                      "predicted": round(float(probability[part].mean()), 4),
                      "observed": round(float(y[part].mean()), 4)})
    return table


def evaluate(card: Scorecard, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """AUC, KS, Gini, the cure rate and the calibration table of ``card`` on ``rows`` (runtime scorer)."""
    y = np.array([r["label"] for r in rows], dtype=int)
    points = np.array([card.score(r["features"]).points for r in rows], dtype=float)
    probability = np.array([card.probability(int(p)) for p in points])
    auc = float(roc_auc_score(y, points)) if 0 < y.sum() < len(y) else float("nan")
    return {"rows": len(rows), "cure_rate": round(float(y.mean()), 4), "auc": round(auc, 4),
            "gini": round(2 * auc - 1, 4), "ks": round(ks_statistic(y, points), 4),
            "brier": round(float(np.mean((probability - y) ** 2)), 4),
            "calibration": calibration(y, points, probability)}


def _bin(name: str, column: list[object], y: np.ndarray, opts: Options) -> Binned:
    if name in ORDINAL:
        return ordinal_bins(name, column, y, ORDINAL[name], max_bins=opts.max_bins, min_share=opts.min_share)
    if name in CATEGORICAL:
        return categorical_bins(name, column, y, min_share=min(opts.min_share, 0.02))
    return numeric_bins(name, column, y, quantiles=opts.quantiles, max_bins=opts.max_bins, min_share=opts.min_share)


def _feature_doc(b: Binned, beta: float, factor: float) -> dict[str, Any]:
    code, high, low, missing = REASONS.get(b.name, (b.name.upper(), b.name, b.name, f"{b.name} unknown"))
    text = (high if b.direction < 0 else low) if b.kind == "numeric" else high

    def pts(w: float) -> int:
        return round(factor * beta * w)

    bins = []
    for label, n, ev, w, i in zip(b.labels(), b.counts, b.events, b.woe, range(len(b.counts)), strict=True):
        entry: dict[str, Any] = {"label": label, "points": pts(w), "woe": round(w, 4), "rows": n,
                                 "cure_rate": round(ev / n, 4) if n else None}
        if b.kind == "categorical":
            entry = {"values": b.categories[i], **entry}
        bins.append(entry)
    doc: dict[str, Any] = {"name": b.name, "kind": b.kind,
                           "reason": {"code": code, "text": text, "missing_text": missing}}
    if b.kind == "numeric":
        doc["edges"] = [int(e) if float(e).is_integer() else e for e in b.edges]
    doc["bins"] = bins
    doc["missing"] = {"points": pts(b.missing[2]), "woe": round(b.missing[2], 4), "rows": b.missing[0]}
    if b.kind == "categorical":
        doc["other"] = {"points": pts(b.other[2]), "woe": round(b.other[2], 4), "rows": b.other[0]}
    doc["information_value"] = round(b.iv, 4)
    doc["coefficient"] = round(beta, 6)
    return doc


def train(rows: Sequence[dict[str, Any]], opts: Options = Options(), *,
          provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fit a scorecard on ``rows`` and return its JSON document (with the held-out metrics)."""
    train_idx, test_idx = split_rows(rows, opts.split, opts.held_out)
    train_rows = [rows[i] for i in train_idx]
    test_rows = [rows[i] for i in test_idx]
    y = np.array([r["label"] for r in train_rows], dtype=int)
    if not 0 < y.sum() < len(y):
        raise ValueError("the training rows need both cured and not-cured labels")
    binned = [_bin(name, [r["features"].get(name) for r in train_rows], y, opts) for name in FEATURES]
    x = np.column_stack([b.transform([r["features"].get(b.name) for r in train_rows]) for b in binned])
    kept = list(range(len(binned)))
    excluded: dict[str, str] = {}
    while True:
        model = LogisticRegression(C=opts.c, max_iter=2000)
        model.fit(x[:, kept], y)
        coefs = model.coef_[0]
        bad = [kept[i] for i, c in enumerate(coefs) if c <= 0]
        if not bad:
            break
        worst = min(bad, key=lambda j: coefs[kept.index(j)])
        excluded[binned[worst].name] = f"coefficient {coefs[kept.index(worst)]:.4f} <= 0 on WoE (collinear)"
        kept.remove(worst)
        if not kept:
            raise ValueError("no feature has a positive coefficient")
    betas = dict.fromkeys(range(len(binned)), 0.0)
    betas.update({j: float(c) for j, c in zip(kept, coefs, strict=True)})
    factor = opts.pdo / math.log(2)
    offset = opts.base_points - factor * math.log(opts.base_odds)
    intercept = float(model.intercept_[0])
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": opts.version,
        "target": {"label": f"cured (overdue paid off) within {opts.horizon_days} days after an overdue snapshot",
                   "horizon_days": opts.horizon_days},
        "scaling": {"base_points": opts.base_points, "base_odds": opts.base_odds, "pdo": opts.pdo},
        "intercept_points": round(offset + factor * intercept),
        "features": [_feature_doc(b, betas[j], factor) for j, b in enumerate(binned)],
    }
    card = Scorecard.from_document(doc)
    doc["metrics"] = {"held_out": evaluate(card, test_rows), "train": {
        k: v for k, v in evaluate(card, train_rows).items() if k != "calibration"}}
    doc["training"] = {
        **(provenance or {}),
        "rows": len(rows), "train_rows": len(train_rows), "held_out_rows": len(test_rows),
        "split": {"by": opts.split, "held_out_share": opts.held_out,
                  **({"cutoff": min(r["observed_at"] for r in test_rows)} if opts.split == "time" else {})},
        "binning": {"method": "quantile then monotone merge, WoE with 0.5 smoothing", "quantiles": opts.quantiles,
                    "max_bins": opts.max_bins, "min_share": opts.min_share},
        "logistic_regression": {"library": "scikit-learn", "solver": "lbfgs", "C": opts.c,
                                "intercept": round(intercept, 6),
                                "coefficients": {binned[j].name: round(betas[j], 6) for j in range(len(binned))}},
        "excluded": excluded,
    }
    return doc

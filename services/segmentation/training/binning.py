"""Binning with weight of evidence (WoE), hand-written and small (docs/scoring.md, "Why these libraries").

Numeric features: start from up to ``quantiles`` quantile edges, merge bins smaller than ``min_share``
of the rows into their neighbour, then merge adjacent bins until the cure rate is monotone in the
feature (direction: the sign of the feature's correlation with the label) and there are at most
``max_bins``. Bins are half-open: bin i holds edges[i-1] <= x < edges[i] (``searchsorted(side="right")``,
the runtime's ``bisect_right``). Missing values (NaN) get their own bin.

Categorical features: one bin per category; categories below ``min_share`` go to the ``other`` bin,
which also takes values never seen in training. Missing (None) values get their own bin.

WoE of a bin = ln(share of the cured in it / share of the not cured in it), with 0.5 added to each count
(so an empty side stays finite); a bin with no rows has WoE 0. Positive WoE: cures more than average.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

SMOOTHING = 0.5


def woe(events: Sequence[int] | np.ndarray, counts: Sequence[int] | np.ndarray, total_events: int,
        total_counts: int) -> np.ndarray:
    """Weight of evidence per bin, cured = event (smoothed with 0.5 per cell; 0 for an empty bin)."""
    ev = np.asarray(events, dtype=float)
    n = np.asarray(counts, dtype=float)
    non = n - ev
    total_non = total_counts - total_events
    out = np.log(((ev + SMOOTHING) / (total_events + SMOOTHING)) / ((non + SMOOTHING) / (total_non + SMOOTHING)))
    return np.where(n > 0, out, 0.0)


def information_value(events: np.ndarray, counts: np.ndarray, total_events: int, total_counts: int) -> float:
    w = woe(events, counts, total_events, total_counts)
    share_ev = events / max(total_events, 1)
    share_non = (counts - events) / max(total_counts - total_events, 1)
    return float(np.sum((share_ev - share_non) * w))


@dataclass
class Binned:
    """A feature's bins, with each bin's rows, cures and WoE (missing and other as their own bins)."""

    name: str
    kind: str  # "numeric" or "categorical"
    edges: list[float] = field(default_factory=list)
    categories: list[list[str]] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    events: list[int] = field(default_factory=list)
    woe: list[float] = field(default_factory=list)
    missing: tuple[int, int, float] = (0, 0, 0.0)  # rows, cures, WoE
    other: tuple[int, int, float] = (0, 0, 0.0)
    direction: int = 0  # numeric: +1 cure rate rises with the value, -1 falls, 0 flat
    iv: float = 0.0

    def labels(self) -> list[str]:
        if self.kind == "categorical":
            return [", ".join(values) for values in self.categories]
        if not self.edges:
            return ["all"]
        fmt = [_fmt(e) for e in self.edges]
        return [f"< {fmt[0]}"] + [f"{a} to < {b}" for a, b in itertools.pairwise(fmt)] + [f">= {fmt[-1]}"]

    def transform(self, column: Sequence[object]) -> np.ndarray:
        """The WoE of each value's bin."""
        miss_woe, other_woe = self.missing[2], self.other[2]
        if self.kind == "numeric":
            x = _floats(column)
            idx = np.searchsorted(np.asarray(self.edges, dtype=float), x, side="right")
            values = np.asarray(self.woe, dtype=float)[np.minimum(idx, len(self.woe) - 1)]
            return np.where(np.isnan(x), miss_woe, values)
        lookup = {v: self.woe[i] for i, values in enumerate(self.categories) for v in values}
        return np.array([miss_woe if v is None else lookup.get(str(v), other_woe) for v in column], dtype=float)


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _floats(column: Sequence[object]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in column], dtype=float)  # type: ignore[arg-type]


def _merge(edges: list[float], ev: list[int], n: list[int], i: int) -> None:
    """Merge bin i with bin i + 1."""
    ev[i] += ev.pop(i + 1)
    n[i] += n.pop(i + 1)
    edges.pop(i)


def numeric_bins(name: str, column: Sequence[object], y: np.ndarray, *, quantiles: int = 20, max_bins: int = 8,
                 min_share: float = 0.05) -> Binned:
    """Quantile bins merged to a minimum size, a monotone cure rate and at most ``max_bins``."""
    x = _floats(column)
    y = np.asarray(y, dtype=int)
    present = ~np.isnan(x)
    xs, ys = x[present], y[present]
    total_n, total_ev = len(y), int(y.sum())
    miss_n, miss_ev = int((~present).sum()), int(y[~present].sum())
    binned = Binned(name, "numeric")
    if len(xs) == 0:
        binned.counts, binned.events, binned.woe = [0], [0], [0.0]
    else:
        cuts = np.unique(np.quantile(xs, np.linspace(0, 1, quantiles + 1)[1:-1], method="lower"))
        edges = [float(c) for c in cuts if c > xs.min()]
        idx = np.searchsorted(np.asarray(edges), xs, side="right")
        n = np.bincount(idx, minlength=len(edges) + 1).tolist()
        ev = np.bincount(idx, weights=ys, minlength=len(edges) + 1).astype(int).tolist()
        min_count = max(int(min_share * len(xs)), 1)
        while len(n) > 1 and min(n) < min_count:
            i = int(np.argmin(n))
            j = i - 1 if i == len(n) - 1 or (i > 0 and n[i - 1] < n[i + 1]) else i
            _merge(edges, ev, n, j)
        direction = int(np.sign(np.cov(xs, ys)[0, 1])) if len(xs) > 1 and xs.std() > 0 else 0
        binned.direction = direction
        while len(n) > 1:
            rates = [e / c for e, c in zip(ev, n, strict=True)]
            worst = [i for i in range(len(n) - 1) if (rates[i + 1] - rates[i]) * direction < 0 or direction == 0]
            if worst:
                _merge(edges, ev, n, worst[0])
            elif len(n) > max_bins:
                gaps = [abs(rates[i + 1] - rates[i]) for i in range(len(n) - 1)]
                _merge(edges, ev, n, int(np.argmin(gaps)))
            else:
                break
        binned.edges, binned.counts, binned.events = edges, n, ev
        binned.woe = woe(ev, n, total_ev, total_n).tolist()
    binned.missing = (miss_n, miss_ev, float(woe([miss_ev], [miss_n], total_ev, total_n)[0]))
    all_ev = np.array([*binned.events, miss_ev])
    all_n = np.array([*binned.counts, miss_n])
    binned.iv = information_value(all_ev, all_n, total_ev, total_n)
    return binned


def categorical_bins(name: str, column: Sequence[object], y: np.ndarray, *, min_share: float = 0.02) -> Binned:
    """One bin per category (sorted); rare ones in ``other``; None in ``missing``."""
    y = np.asarray(y, dtype=int)
    total_n, total_ev = len(y), int(y.sum())
    counts: dict[str, list[int]] = {}
    miss = [0, 0]
    for value, label in zip(column, y, strict=True):
        cell = miss if value is None else counts.setdefault(str(value), [0, 0])
        cell[0] += 1
        cell[1] += int(label)
    binned = Binned(name, "categorical")
    other = [0, 0]
    for value in sorted(counts):
        n, ev = counts[value]
        if n < min_share * total_n:
            other[0] += n
            other[1] += ev
        else:
            binned.categories.append([value])
            binned.counts.append(n)
            binned.events.append(ev)
    binned.woe = woe(binned.events, binned.counts, total_ev, total_n).tolist()
    binned.missing = (miss[0], miss[1], float(woe([miss[1]], [miss[0]], total_ev, total_n)[0]))
    binned.other = (other[0], other[1], float(woe([other[1]], [other[0]], total_ev, total_n)[0]))
    all_ev = np.array([*binned.events, miss[1], other[1]])
    all_n = np.array([*binned.counts, miss[0], other[0]])
    binned.iv = information_value(all_ev, all_n, total_ev, total_n)
    return binned


def ordinal_bins(name: str, column: Sequence[object], y: np.ndarray, order: Sequence[str], *,
                 max_bins: int = 8, min_share: float = 0.05) -> Binned:
    """Ordered categories (a rating A-E): binned as their rank, so a rare category joins its neighbour
    rather than ``other`` and the cure rate is monotone in the order; every category of ``order`` gets a
    bin even if the training never saw it. Values outside ``order`` count as missing."""
    rank = {value: float(i) for i, value in enumerate(order)}
    ranks = [rank.get(str(v)) if v is not None else None for v in column]
    numeric = numeric_bins(name, ranks, y, quantiles=len(order), max_bins=max_bins, min_share=min_share)
    groups: list[list[str]] = [[] for _ in numeric.counts]
    for value in order:
        groups[int(np.searchsorted(np.asarray(numeric.edges), rank[value], side="right"))].append(value)
    return Binned(name, "categorical", categories=groups, counts=numeric.counts, events=numeric.events,
                  woe=numeric.woe, missing=numeric.missing, direction=numeric.direction, iv=numeric.iv)

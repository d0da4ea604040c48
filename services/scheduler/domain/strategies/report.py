"""The experiment report's arithmetic (docs/strategies.md, "The experiment report"): pure functions from each
account's facts in an experiment to per-arm figures with 95% confidence intervals, and a plain statement of
whether a challenger differs from the champion.

- Rates of accounts (cure rate, complaint rate, contacted rate): the Wilson score interval, which stays inside
  [0, 1] and behaves at small counts and rates near 0 or 1.
- Recovery rate (money recovered over money overdue, a ratio of sums): the delta-method interval of a ratio
  estimator over accounts.
- A challenger against the champion: a two-sided z-test, pooled for proportions and unpooled for recovery; "the
  difference is significant" when p < 0.05, said in words with the difference and its interval.

An account counts at a horizon (7, 30, 60 days) only once that many days have passed since its first step in the
experiment (it has "matured"): younger accounts would pull every rate down.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

HORIZONS = (7, 30, 60)
Z95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class AccountFacts:
    """One account in an experiment: its arm, when its first step in the experiment was planned, what it owed
    then, the contacts made and what they cost, and when its payments reached that amount (if they did)."""

    arm: str
    start: datetime
    overdue_minor: int
    contacts: int
    cost_minor: int
    paid: Sequence[tuple[datetime, int]] = ()  # payments (when, amount in minor units) after the start
    plans: int = 0
    complained: bool = False

    def paid_within(self, days: int) -> int:
        """Recovered within ``days`` of the start, at most what was owed."""
        until = self.start + timedelta(days=days)
        return min(self.overdue_minor, sum(amount for at, amount in self.paid if at <= until))

    def cured_within(self, days: int) -> bool:
        return self.overdue_minor > 0 and self.paid_within(days) >= self.overdue_minor


@dataclass(frozen=True, slots=True)
class Rate:
    """A rate with its 95% interval and the counts it comes from."""

    value: float | None
    low: float | None
    high: float | None
    numerator: int
    denominator: int


@dataclass(frozen=True, slots=True)
class Comparison:
    """A challenger's rate less the champion's, its 95% interval, the p-value, and what it means in words."""

    metric: str
    difference: float | None
    low: float | None
    high: float | None
    p_value: float | None
    significant: bool
    statement: str


@dataclass(frozen=True, slots=True)
class ArmReport:
    arm: str
    accounts: int
    contacts_per_account: float | None
    cost_minor: int
    cost_per_account_minor: int | None
    plans: int
    complaint_rate: Rate
    cure_rate: Mapping[int, Rate]
    recovery_rate: Mapping[int, Rate]
    recovered_minor: Mapping[int, int]
    compared: list[Comparison] = field(default_factory=list)


def wilson(successes: int, n: int, z: float = Z95) -> Rate:
    """The Wilson score interval of a proportion."""
    if n == 0:
        return Rate(None, None, None, successes, n)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # the interval always holds the rate itself (rounding can push an end a hair past it at 0 or 1)
    return Rate(p, min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half)), successes, n)


def ratio(pairs: Sequence[tuple[int, int]], z: float = Z95) -> tuple[Rate, float | None]:
    """Σ recovered / Σ owed over accounts (recovered, owed), with the delta-method interval; and its variance."""
    n = len(pairs)
    owed = sum(o for _, o in pairs)
    got = sum(r for r, _ in pairs)
    if n == 0 or owed == 0:
        return Rate(None, None, None, got, owed), None
    r = got / owed
    mean_owed = owed / n
    residual = [(g - r * o) for g, o in pairs]
    variance = (sum(e * e for e in residual) / (n - 1) if n > 1 else 0.0) / (n * mean_owed * mean_owed)
    half = z * math.sqrt(variance)
    return Rate(r, max(0.0, r - half), min(1.0, r + half), got, owed), variance


def _p_value(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


def _words(metric: str, arm: str, difference: float, low: float, high: float, p: float, significant: bool) -> str:
    direction = "higher" if difference > 0 else "lower"
    span = f"{difference * 100:+.1f} points (95% CI {low * 100:+.1f} to {high * 100:+.1f})"
    if significant:
        return f"{arm}'s {metric} is {direction} than the champion's: {span}, p = {p:.3g}: significant at 95%."
    return f"{arm}'s {metric} differs from the champion's by {span}, p = {p:.3g}: not significant at 95%."


def compare_proportions(metric: str, arm: str, challenger: Rate, champion: Rate) -> Comparison:
    """A two-sided two-proportion z-test (pooled), and the difference's unpooled 95% interval."""
    n1, n2 = challenger.denominator, champion.denominator
    if n1 == 0 or n2 == 0:
        return Comparison(metric, None, None, None, None, False, f"{arm}'s {metric}: not enough matured accounts "
                                                                 f"to compare")
    p1, p2 = challenger.numerator / n1, champion.numerator / n2
    pooled = (challenger.numerator + champion.numerator) / (n1 + n2)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    d = p1 - p2
    if se_pooled == 0:
        p = 1.0 if d == 0 else 0.0
    else:
        p = _p_value(d / se_pooled)
    low, high = d - Z95 * se, d + Z95 * se
    significant = p < 0.05
    return Comparison(metric, d, low, high, p, significant, _words(metric, arm, d, low, high, p, significant))


def compare_ratios(metric: str, arm: str, challenger: tuple[Rate, float | None],
                   champion: tuple[Rate, float | None]) -> Comparison:
    (a, va), (b, vb) = challenger, champion
    if a.value is None or b.value is None or va is None or vb is None:
        return Comparison(metric, None, None, None, None, False, f"{arm}'s {metric}: not enough matured accounts "
                                                                 f"to compare")
    d = a.value - b.value
    se = math.sqrt(va + vb)
    p = 1.0 if se == 0 and d == 0 else (0.0 if se == 0 else _p_value(d / se))
    low, high = d - Z95 * se, d + Z95 * se
    significant = p < 0.05
    return Comparison(metric, d, low, high, p, significant, _words(metric, arm, d, low, high, p, significant))


Variances = dict[int, tuple[Rate, float | None]]


def _arm(arm: str, facts: Sequence[AccountFacts], now: datetime) -> tuple[ArmReport, Variances]:
    n = len(facts)
    cost = sum(f.cost_minor for f in facts)
    cure: dict[int, Rate] = {}
    recovery: dict[int, Rate] = {}
    variances: Variances = {}
    recovered: dict[int, int] = {}
    for h in HORIZONS:
        matured = [f for f in facts if f.start + timedelta(days=h) <= now]
        cure[h] = wilson(sum(f.cured_within(h) for f in matured), len(matured))
        variances[h] = ratio([(f.paid_within(h), f.overdue_minor) for f in matured])
        recovery[h] = variances[h][0]
        recovered[h] = sum(f.paid_within(h) for f in matured)
    report = ArmReport(
        arm=arm, accounts=n, contacts_per_account=(sum(f.contacts for f in facts) / n) if n else None,
        cost_minor=cost, cost_per_account_minor=(cost // n) if n else None, plans=sum(f.plans for f in facts),
        complaint_rate=wilson(sum(f.complained for f in facts), n), cure_rate=cure, recovery_rate=recovery,
        recovered_minor=recovered)
    return report, variances


def report(facts: Iterable[AccountFacts], *, arms: Sequence[str], now: datetime,
           champion: str = "champion") -> list[ArmReport]:
    """Per-arm figures, the champion first, each challenger compared with the champion on cure and recovery at
    every horizon and on complaints."""
    by_arm: dict[str, list[AccountFacts]] = {a: [] for a in arms}
    for f in facts:
        by_arm.setdefault(f.arm, []).append(f)
    built = {a: _arm(a, fs, now) for a, fs in by_arm.items()}
    ordered = [champion, *sorted(a for a in built if a != champion)] if champion in built else sorted(built)
    if champion in built:
        base, base_variances = built[champion]
        for a in ordered[1:]:
            arm_report, variances = built[a]
            for h in HORIZONS:
                arm_report.compared.append(compare_proportions(f"cure rate at {h} days", a, arm_report.cure_rate[h],
                                                               base.cure_rate[h]))
                arm_report.compared.append(compare_ratios(f"recovery rate at {h} days", a, variances[h],
                                                          base_variances[h]))
            arm_report.compared.append(compare_proportions("complaint rate", a, arm_report.complaint_rate,
                                                           base.complaint_rate))
    return [built[a][0] for a in ordered]

"""A synthetic portfolio: seeded, deterministic, every figure in one place (``Assumptions``).

Each account is drawn from its own random stream (``account_rng(seed, index)``), so the first N accounts
of a 50,000-account portfolio are the same as a portfolio of N accounts with the same seed, and adding
accounts never changes the others. Money is integer minor units; amounts are lognormal around medians
given in major units and converted once, with ``round``, to minor units.

Every field of ``Assumptions`` carries its source in its metadata (``source_of``): the seeds
(../shared/seeds, via ../shared/BRIEF.md), the platform's own contracts and docs, public statistics,
or "assumed" when the figure is a guess chosen to look plausible. docs/simulator.md lists them all.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

BANK_ZONE = "Asia/Shanghai"


def _src(default: Any, source: str) -> Any:
    """A dataclass field with a default and its source."""
    return field(default=default, metadata={"source": source})


@dataclass(frozen=True)
class Assumptions:
    """Every distribution the portfolio is drawn from, and where each figure comes from."""

    tenant: str = _src("sim-bank", "assumed: one tenant")
    # credit quality: a latent z ~ N(0, 1) per customer drives the internal score, the bureau score and both
    # latent traits (willingness and ability to pay)
    score_mean: float = _src(690.0, "assumed: puts about 16% in A and 7% in E with the seg-v1 cut-offs")
    score_sd: float = _src(60.0, "assumed")
    score_min: int = _src(300, "contract: AccountOverdueV1.credit_score is 300-950")
    score_max: int = _src(950, "contract: AccountOverdueV1.credit_score is 300-950")
    rating_cutoffs: tuple[tuple[int, str], ...] = _src(
        ((750, "A"), (700, "B"), (650, "C"), (600, "D")),
        "docs/domain.md seg-v1: a score maps to a rating, >=750 A, >=700 B, >=650 C, >=600 D, else E")
    score_noise_weight: float = _src(
        0.6, "assumed: the bureau score sees the latent credit quality through noise (corr 0.8)")
    score_missing_share: float = _src(0.15, "assumed: thin-file customers without a bureau score")
    willingness_loading: float = _src(0.5, "assumed: corr(willingness, credit quality) = 0.5")
    ability_loading: float = _src(0.6, "assumed: corr(ability, credit quality) = 0.6")
    # products (000/001/003 name loans and credit cards; auto loans are an assumed third product)
    products: tuple[tuple[str, float], ...] = _src(
        (("consumer_loan", 0.45), ("credit_card", 0.40), ("auto_loan", 0.15)),
        "products from the seeds (000, 001, 003: loans and credit cards); auto loan and the mix assumed")
    median_outstanding_major: tuple[tuple[str, float], ...] = _src(
        (("consumer_loan", 30_000.0), ("credit_card", 12_000.0), ("auto_loan", 80_000.0)),
        "assumed: medians in CNY")
    outstanding_sigma: tuple[tuple[str, float], ...] = _src(
        (("consumer_loan", 0.8), ("credit_card", 1.0), ("auto_loan", 0.5)),
        "assumed: lognormal spread (sigma of ln amount)")
    remaining_months: tuple[tuple[str, int, int], ...] = _src(
        (("consumer_loan", 6, 36), ("auto_loan", 12, 48)),
        "assumed: remaining instalments, uniform between the two figures")
    card_minimum_payment: float = _src(
        0.10, "public: the usual minimum payment of Chinese card issuers, 10% of the statement balance")
    currencies: tuple[tuple[str, float, float], ...] = _src(
        (("CNY", 0.92, 1.0), ("USD", 0.05, 1 / 7.2), ("GBP", 0.03, 1 / 9.1)),
        "BRIEF (Chinese banks, so mostly CNY); the USD/GBP shares assumed (the US and UK rule packs exist); "
        "the amount scale is roughly the CNY exchange rate")
    zones: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = _src(
        (
            ("CNY", (("Asia/Shanghai", 0.95), ("Asia/Urumqi", 0.03), ("Asia/Hong_Kong", 0.02))),
            ("USD", (("America/New_York", 0.6), ("America/Los_Angeles", 0.4))),
            ("GBP", (("Europe/London", 1.0),)),
        ),
        "contract default Asia/Shanghai (CustomerContact.time_zone); the other zones and shares assumed")
    phone_share: float = _src(0.97, "assumed")
    email_share: float = _src(0.55, "assumed")
    address_share: float = _src(0.85, "assumed")
    english_share_non_cny: float = _src(1.0, "assumed: USD and GBP customers get English texts")
    tenure_mean_months: float = _src(30.0, "assumed: exponential months on book")
    tenure_max_months: int = _src(180, "assumed: 15 years at most")
    # the first due date of the simulation is spread over one month
    due_day_min: int = _src(1, "assumed: due days of month 1-28, uniform")
    due_day_max: int = _src(28, "assumed: due days of month 1-28, uniform")

    def source_of(self, name: str) -> str:
        """Where the figure of field ``name`` comes from."""
        for f in fields(self):
            if f.name == name:
                return str(f.metadata["source"])
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class Account:
    """One account of one customer (one account per customer in this simulator), with its latent traits."""

    index: int
    account_id: str
    customer_id: str
    account_ref: str
    product: str
    currency: str
    outstanding_minor: int
    instalment_minor: int
    first_due: date
    rating: str
    credit_score: int | None
    time_zone: str
    utc_offset_hours: float  # at the simulation start; DST changes are not followed
    locale: str
    has_phone: bool
    has_email: bool
    has_address: bool
    opened_on: date
    willingness: float  # latent, N(0, 1): never an input of the scorecard
    ability: float  # latent, N(0, 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "account_id": self.account_id, "customer_id": self.customer_id,
            "account_ref": self.account_ref, "product": self.product, "currency": self.currency,
            "outstanding_minor": self.outstanding_minor, "instalment_minor": self.instalment_minor,
            "first_due": self.first_due.isoformat(), "rating": self.rating, "credit_score": self.credit_score,
            "time_zone": self.time_zone, "utc_offset_hours": self.utc_offset_hours, "locale": self.locale,
            "has_phone": self.has_phone, "has_email": self.has_email, "has_address": self.has_address,
            "opened_on": self.opened_on.isoformat(), "willingness": round(self.willingness, 6),
            "ability": round(self.ability, 6),
        }


def account_rng(seed: int, index: int, stream: int = 0) -> random.Random:
    """The random stream of one account (``stream`` 0: its drawing, 1: its history)."""
    return random.Random((seed * 1_000_003 + index) * 4 + stream)


def _pick(rng: random.Random, table: tuple[tuple[Any, ...], ...]) -> tuple[Any, ...]:
    """A row of ``table`` chosen by the weights in its second column."""
    u = rng.random() * sum(row[1] for row in table)
    for row in table:
        u -= row[1]
        if u < 0:
            return row
    return table[-1]


def rating_for(score: float, cutoffs: tuple[tuple[int, str], ...]) -> str:
    for floor, rating in cutoffs:
        if score >= floor:
            return rating
    return "E"


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    return date(day.year + month // 12, month % 12 + 1, min(day.day, 28))


DEFAULT_ASSUMPTIONS = Assumptions()

_OFFSETS: dict[tuple[str, date], float] = {}


def utc_offset_hours(zone: str, on: date) -> float:
    key = (zone, on)
    if key not in _OFFSETS:
        offset = datetime(on.year, on.month, on.day, 12, tzinfo=ZoneInfo(zone)).utcoffset()
        _OFFSETS[key] = (offset or timedelta(0)).total_seconds() / 3600
    return _OFFSETS[key]


def draw_account(index: int, *, seed: int, start: date, a: Assumptions = DEFAULT_ASSUMPTIONS) -> Account:
    """Account ``index`` of the portfolio ``seed`` (the same whatever the portfolio's size)."""
    rng = account_rng(seed, index)
    z = rng.gauss(0.0, 1.0)
    w = a.score_noise_weight
    internal = a.score_mean + a.score_sd * (math.sqrt(1 - w * w) * z + w * rng.gauss(0.0, 1.0))
    bureau = a.score_mean + a.score_sd * (math.sqrt(1 - w * w) * z + w * rng.gauss(0.0, 1.0))
    rating = rating_for(internal, a.rating_cutoffs)
    credit_score: int | None = min(max(round(bureau), a.score_min), a.score_max)
    if rng.random() < a.score_missing_share:
        credit_score = None
    wl, al = a.willingness_loading, a.ability_loading
    willingness = wl * z + math.sqrt(1 - wl * wl) * rng.gauss(0.0, 1.0)
    ability = al * z + math.sqrt(1 - al * al) * rng.gauss(0.0, 1.0)

    product = _pick(rng, a.products)[0]
    currency, _, scale = _pick(rng, a.currencies)
    median = dict(a.median_outstanding_major)[product] * scale
    sigma = dict(a.outstanding_sigma)[product]
    outstanding = max(round(median * math.exp(sigma * rng.gauss(0.0, 1.0)) * 100), 10_000)  # at least 100.00
    if product == "credit_card":
        instalment = max(round(outstanding * a.card_minimum_payment), 1)
    else:
        low, high = next((lo, hi) for name, lo, hi in a.remaining_months if name == product)
        instalment = max(outstanding // rng.randint(low, high), 1)
    zone = _pick(rng, dict(a.zones)[currency])[0]
    first_due = start + timedelta(days=rng.randint(a.due_day_min, a.due_day_max) - 1)
    months_on_book = min(int(rng.expovariate(1 / a.tenure_mean_months)) + 1, a.tenure_max_months)
    opened_on = _add_months(first_due, -months_on_book)
    has_phone = rng.random() < a.phone_share
    has_email = rng.random() < a.email_share
    has_address = rng.random() < a.address_share
    locale = "zh-CN" if currency == "CNY" or rng.random() >= a.english_share_non_cny else "en"
    return Account(
        index=index, account_id=f"A{index:08d}", customer_id=f"C{index:08d}",
        account_ref=f"{rng.randint(0, 9999):04d}", product=product, currency=currency,
        outstanding_minor=outstanding, instalment_minor=instalment, first_due=first_due, rating=rating,
        credit_score=credit_score, time_zone=zone, utc_offset_hours=utc_offset_hours(zone, start),
        locale=locale, has_phone=has_phone, has_email=has_email, has_address=has_address, opened_on=opened_on,
        willingness=willingness, ability=ability,
    )


def generate(n: int, *, seed: int, start: date, assumptions: Assumptions = DEFAULT_ASSUMPTIONS) -> list[Account]:
    """A portfolio of ``n`` accounts."""
    return [draw_account(i, seed=seed, start=start, a=assumptions) for i in range(n)]

"""Champion and challengers (docs/strategies.md, "Experiments"): which strategy an account's treatment follows.

A tenant's assignment document names the champion and, while an experiment runs, its challengers, each with a
share of every segment's borrowers in basis points::

    {"champion": {"strategy": "default", "version": 3},
     "experiment": "email-first-2026-12",
     "challengers": [{"arm": "email-first", "strategy": "email-first", "version": 1,
                      "share_bp": {"prime": 2000}}]}

Assignment is a pure function of the experiment's name, the borrower and the segment: the borrower's point in
[0, 10000) is a hash of (experiment, borrower). Each challenger owns a block of points, in the order listed, as
wide as its largest share of any segment, and takes in each segment the start of its block, as wide as its share
there; the champion takes the rest. So a borrower keeps its arm across accounts, replays and replicas, and a
borrower a challenger takes in a segment with a smaller share is taken by it in every segment with a larger one
(its range starts at the same point in every segment). The challengers' largest shares may add up to 10,000 bp.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.scheduler.domain.strategies.document import SEGMENTS

CHAMPION = "champion"
BASIS = 10_000
MAX_CHALLENGERS = 4
NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


@dataclass(frozen=True, slots=True)
class StrategyRef:
    name: str
    version: int

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True, slots=True)
class Challenger:
    arm: str
    strategy: StrategyRef
    share_bp: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class Assignment:
    """The champion, and the experiment's challengers (none when no experiment runs)."""

    champion: StrategyRef
    experiment: str | None = None
    challengers: tuple[Challenger, ...] = ()

    def refs(self) -> list[StrategyRef]:
        return [self.champion, *(c.strategy for c in self.challengers)]


def point(experiment: str, borrower: str) -> int:
    """The borrower's point in [0, 10000) for this experiment: stable across processes (no salted ``hash``)."""
    digest = hashlib.blake2b(f"{experiment}\x1f{borrower}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BASIS


def arm_of(assignment: Assignment, *, borrower: str, segment: str) -> tuple[str, StrategyRef]:
    """The arm a borrower in this segment is in, and the strategy it follows."""
    if not assignment.challengers or assignment.experiment is None:
        return CHAMPION, assignment.champion
    p, start = point(assignment.experiment, borrower), 0
    for c in assignment.challengers:
        if start <= p < start + c.share_bp.get(segment, 0):
            return c.arm, c.strategy
        start += max(c.share_bp.values(), default=0)  # its block: as wide as its largest share
    return CHAMPION, assignment.champion


def _ref(value: Any, where: str, errors: list[str]) -> StrategyRef | None:
    if not isinstance(value, dict) or set(value) != {"strategy", "version"}:
        errors.append(f"{where} must be {{\"strategy\": name, \"version\": number}}")
        return None
    name, version = value["strategy"], value["version"]
    ok = True
    if not isinstance(name, str) or not NAME.fullmatch(name):
        errors.append(f"{where}.strategy must be a strategy name, not {name!r}")
        ok = False
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        errors.append(f"{where}.version must be a published version number (1 or more), not {version!r}")
        ok = False
    return StrategyRef(name, version) if ok else None


def parse_assignment(document: Any) -> tuple[Assignment | None, list[str]]:
    """The assignment a document describes, and every reason it cannot be used. Whether the strategies it
    names exist is the caller's to check (they live in the database)."""
    if not isinstance(document, dict):
        return None, ["the assignment must be a JSON object"]
    errors = [f"unknown field {k!r} (champion, experiment, challengers)"
              for k in sorted(set(document) - {"champion", "experiment", "challengers"})]
    champion = _ref(document.get("champion"), "champion", errors)
    raw = document.get("challengers", [])
    experiment = document.get("experiment")
    if not isinstance(raw, list) or len(raw) > MAX_CHALLENGERS:
        errors.append(f"challengers must be a list of at most {MAX_CHALLENGERS}")
        raw = []
    if raw and (not isinstance(experiment, str) or not NAME.fullmatch(experiment)):
        errors.append("an experiment needs a name (\"experiment\": lower case letters, digits, '.', '_', '-'): "
                      "it seeds the borrowers' assignment")
    if not raw and experiment is not None:
        errors.append("\"experiment\" names an experiment with no challengers")
    challengers: list[Challenger] = []
    for i, c in enumerate(raw):
        where = f"challengers[{i}]"
        if not isinstance(c, dict) or set(c) - {"arm", "strategy", "version", "share_bp"} or "share_bp" not in c:
            errors.append(f"{where} must be {{arm, strategy, version, share_bp}}")
            continue
        arm = c.get("arm")
        if not isinstance(arm, str) or not NAME.fullmatch(arm) or arm == CHAMPION:
            errors.append(f"{where}.arm must be a name other than {CHAMPION!r}, not {arm!r}")
        elif arm in {x.arm for x in challengers}:
            errors.append(f"{where}.arm {arm!r} is used twice")
        ref = _ref({"strategy": c.get("strategy"), "version": c.get("version")}, where, errors)
        shares = c["share_bp"]
        if not isinstance(shares, dict) or not shares:
            errors.append(f"{where}.share_bp must map segments to basis points")
            continue
        for segment, share in shares.items():
            if segment not in SEGMENTS:
                errors.append(f"{where}.share_bp: unknown segment {segment!r} ({', '.join(SEGMENTS)})")
            elif isinstance(share, bool) or not isinstance(share, int) or not 0 <= share <= BASIS:
                errors.append(f"{where}.share_bp.{segment} must be 0-{BASIS} basis points, not {share!r}")
        if ref is not None and isinstance(arm, str):
            challengers.append(Challenger(arm, ref, dict(shares)))
    blocks = sum(max((v for v in c.share_bp.values() if isinstance(v, int)), default=0) for c in challengers)
    if blocks > BASIS:
        errors.append(f"the challengers' largest shares add up to {blocks} basis points, more than {BASIS} (each "
                      f"challenger takes a block as wide as its largest share, so a borrower keeps its arm across "
                      f"segments)")
    if champion is not None and any(c.strategy == champion for c in challengers):
        errors.append("a challenger runs the champion's own strategy version: nothing would be compared")
    if errors or champion is None:
        return None, errors
    return Assignment(champion, experiment if challengers else None, tuple(challengers)), []


def assignment_document(a: Assignment) -> dict[str, Any]:
    doc: dict[str, Any] = {"champion": {"strategy": a.champion.name, "version": a.champion.version}}
    if a.challengers:
        doc["experiment"] = a.experiment
        doc["challengers"] = [{"arm": c.arm, "strategy": c.strategy.name, "version": c.strategy.version,
                               "share_bp": dict(c.share_bp)} for c in a.challengers]
    return doc

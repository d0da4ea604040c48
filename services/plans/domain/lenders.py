"""Co-lending (docs/plans.md, "Co-lending"): who lends an account and in what shares, and how a payment splits
between them. Pure.

An account's overdue notice lists its co-lenders (another tenant each, with ``share_bp`` basis points); the
servicer, the notice's tenant, is never listed and holds what the co-lenders do not (10,000 minus their sum). A
payment splits by these shares with ``arithmetic.split``: the largest remainder method, ties to the lender whose
tenant id sorts first, so the parts add up to the payment exactly and each is within one minor unit of its exact
share. A lender whose share is 0 basis points (the servicer when the co-lenders hold everything) is left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from services.plans.domain.arithmetic import BASIS, split
from services.plans.domain.schedule import PlanError

__all__ = ["LendersError", "lenders_of", "mask_name", "mask_phone", "split_payment"]


class LendersError(PlanError):
    """Co-lenders that cannot be the lenders of an account: shares above 10,000, the servicer listed, a co-lender
    twice. The contracts refuse these already; this guards the read model."""


def lenders_of(servicer: str, co_lenders: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Every lender of an account with its share in basis points, the servicer's remainder included (and left
    out when it is 0); the shares add up to 10,000. ``co_lenders`` as stored: ``{"tenant": ..., "share_bp": ...}``."""
    shares: dict[str, int] = {}
    for lender in co_lenders:
        tenant, share_bp = str(lender["tenant"]), lender["share_bp"]
        if tenant == servicer:
            raise LendersError(f"the servicer {servicer!r} is listed as its own co-lender")
        if tenant in shares:
            raise LendersError(f"co-lender {tenant!r} is listed twice")
        if not isinstance(share_bp, int) or isinstance(share_bp, bool) or not 1 <= share_bp <= BASIS:
            raise LendersError(f"co-lender {tenant!r} has share {share_bp!r}: 1 to {BASIS} basis points")
        shares[tenant] = share_bp
    remainder = BASIS - sum(shares.values())
    if remainder < 0:
        raise LendersError(f"co-lender shares add up to {BASIS - remainder} basis points, more than {BASIS}")
    return {servicer: remainder, **shares} if remainder else shares


def split_payment(amount_minor: int, *, servicer: str, co_lenders: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """A payment's split between the account's lenders (minor units by lender), adding up to the payment."""
    return split(amount_minor, lenders_of(servicer, co_lenders))


def mask_phone(phone: str) -> str:
    """A phone number as a co-lender may see it: the country code, the first three and the last four digits of
    the number (``+8613900000001`` -> ``+86 139****0001``); a short number keeps only its last two digits."""
    digits = "".join(c for c in phone if c.isdigit())
    country = ""
    if phone.strip().startswith("+"):
        # +1 (NANP) and +7 have one digit; +86, +44 ... two; three-digit codes show one digit less masked
        size = 1 if digits[:1] in ("1", "7") else 2
        country, digits = f"+{digits[:size]} ", digits[size:]
    if len(digits) < 8:
        return country + "*" * max(len(digits) - 2, 0) + digits[-2:]
    return f"{country}{digits[:3]}{'*' * (len(digits) - 7)}{digits[-4:]}"


def mask_name(name: str) -> str:
    """A name as a co-lender may see it: its first character and one ``*`` (``测试客户`` -> ``测*``)."""
    name = name.strip()
    return f"{name[0]}*" if name else ""

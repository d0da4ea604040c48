"""What negotiation, co-lending and the portal read of an account (issue 9), on real PostgreSQL through the
real consumer handlers: the newest overdue notice's product, co-lenders, sealed contact and reference; the
newest segment whatever the arrival order, and whether it comes before or after the notice."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from itertools import permutations
from typing import Any

import pytest
from sqlalchemy import select

from services.plans.db import repository as repo
from services.plans.db.models import PlanAccount
from shared.crypto import is_sealed
from tests.plans.support import CIPHER, account_segmented, consume, overdue_notice

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


async def stored(sessions: Any, tenant: str, account_id: str = "A1") -> PlanAccount | None:
    async with sessions() as session:
        return (await session.execute(select(PlanAccount).where(
            PlanAccount.tenant == tenant, PlanAccount.account_id == account_id))).scalars().first()  # type: ignore[arg-type]


async def segment(sessions: Any, tenant: str, account_id: str = "A1") -> tuple[str, str] | None:
    async with sessions() as session:
        row = await repo.segment_of(session, tenant=tenant, account_id=account_id)
    return None if row is None else (row.segment, row.dpd_bucket)


async def test_the_notice_s_product_co_lenders_contact_and_reference_are_kept_sealed(sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    await consume(sessions, overdue_notice(tenant, "A1", product="co-lent-loan", co_lenders=[("bank-b", 3000),
                                                                                             ("bank-c", 1500)],
                                           national_id="110101199001011234", locale="en", account_ref="8842"))
    account = await stored(sessions, tenant)
    assert account is not None
    assert (account.product, account.account_ref) == ("co-lent-loan", "8842")
    assert account.co_lenders == [{"tenant": "bank-b", "share_bp": 3000}, {"tenant": "bank-c", "share_bp": 1500}]
    assert account.contact["locale"] == "en" and account.contact["time_zone"] == "Asia/Shanghai"
    assert is_sealed(account.contact["national_id"]) and is_sealed(account.contact["phone"])
    assert "110101199001011234" not in str(account.contact)
    assert CIPHER.open(account.contact["national_id"], context=tenant) == "110101199001011234"


async def test_a_newer_notice_replaces_the_co_lenders_and_an_older_one_does_not(sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    new = overdue_notice(tenant, "A1", co_lenders=[("bank-b", 2000)], at=NOW)
    old = overdue_notice(tenant, "A1", co_lenders=[("bank-b", 3000), ("bank-c", 1000)], at=NOW - timedelta(hours=1))
    await consume(sessions, new)
    await consume(sessions, old)
    account = await stored(sessions, tenant)
    assert account is not None and account.co_lenders == [{"tenant": "bank-b", "share_bp": 2000}]


@pytest.mark.parametrize("order", list(permutations(range(3))))
async def test_the_newest_segment_wins_in_any_order_before_or_after_the_notice(
        sessions, tenant, order: tuple[int, ...]) -> None:  # type: ignore[no-untyped-def]
    events = [overdue_notice(tenant, "A1", at=NOW - timedelta(hours=3)),
              account_segmented(tenant, "A1", "standard", dpd_bucket="1-15", at=NOW - timedelta(hours=2)),
              account_segmented(tenant, "A1", "high_risk", dpd_bucket="16-30", at=NOW - timedelta(hours=1))]
    for i in order:
        await consume(sessions, events[i])
    await consume(sessions, events[1])  # a redelivered older one changes nothing
    assert await segment(sessions, tenant) == ("high_risk", "16-30")
    assert await stored(sessions, tenant) is not None


async def test_segments_are_per_tenant(sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    other = f"{tenant}-x"
    await consume(sessions, account_segmented(tenant, "A1", "prime"), account_segmented(other, "A1", "high_risk"))
    assert await segment(sessions, tenant) == ("prime", "1-15")
    assert await segment(sessions, other) == ("high_risk", "1-15")
    assert await segment(sessions, tenant, "A2") is None

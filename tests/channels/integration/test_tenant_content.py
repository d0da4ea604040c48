"""A tenant's branding and published templates reach its messages, and only its (issue 7): through the real
dispatcher, PostgreSQL and the SMS sandbox (the ``rig`` of test_dispatcher.py). Tenant A's contact goes out with
A's lender name (its 【...】 signature), help line and A's own wording; tenant B's, in the same claim, with the
built-in and the default lender."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from services.channels import service
from shared.contracts.events import Channel
from tests.channels.integration.test_dispatcher import CIPHER, PARK, Rig, rig  # noqa: F401 - the rig fixture
from tests.helpers import committed

pytestmark = pytest.mark.integration

A_WORDING = ("【{{ lender }}】您好：{% if account_ref %}尾号{{ account_ref }}{% else %}您的账户{% endif %}"
             "已逾期{{ days_past_due }}天，待还{{ amount }}。如有困难可联系我们协商还款计划；如有疑问或投诉，"
             "请联系{{ lender }}客服{% if help_line %}（{{ help_line }}）{% endif %}。回复TD退订")


async def test_tenant_a_renders_with_its_branding_and_template_tenant_b_with_the_builtin(rig: Rig) -> None:  # noqa: F811
    other = f"t-{uuid.uuid4().hex[:8]}"
    async with committed(rig.runtime.sessions) as uow:
        await service.publish_branding(uow, tenant=rig.tenant, lender={"zh-CN": "示例银行", "en": "Example Bank"},
                                       help_line="+86 400 888 8888", complaint_line=None, created_by="test",
                                       reason="brand")
        await service.publish_template_version(uow, tenant=rig.tenant, template_id="reminder.sms", locale="zh-CN",
                                               channel="sms", subject="", body=A_WORDING, created_by="test",
                                               reason="our wording")
    service.CONTENT.forget(rig.tenant)
    mine = rig.approval(Channel.SMS, 1, "+8613812345678")
    mine_en = rig.approval(Channel.SMS, 2, "+447700900123", locale="en")
    theirs = rig.approval(Channel.SMS, 3, "+8613812345679")
    theirs = theirs.model_copy(update={"request": theirs.request.model_copy(update={
        "tenant": other, "contact_id": f"{other}-sms-3",
        "destination": CIPHER.seal("+8613812345679", context=other)})})
    try:
        await rig.approve(mine, mine_en, theirs)
        await rig.drain()
        [a_zh] = await rig.sms(mine.request.contact_id)
        assert a_zh["body"].startswith("【示例银行】您好：尾号1111已逾期5天，待还1,234.56 CNY。"), a_zh["body"]
        assert "示例银行客服（400 888 8888）" in a_zh["body"] and "缓催" not in a_zh["body"]
        [a_en] = await rig.sms(mine_en.request.contact_id)  # no en version of A's: the built-in, A's branding
        assert a_en["body"].startswith("Example Bank reminder: your account ending 2222 is 5 days past due")
        assert "on +86 400 888 8888" in a_en["body"]
        [b_zh] = await rig.sms(theirs.request.contact_id)
        assert b_zh["body"].startswith("【缓催】尊敬的客户，您尾号3333的账户已逾期5天"), b_zh["body"]
        assert "示例银行" not in b_zh["body"]
    finally:
        async with rig.runtime.sessions() as session:
            await session.execute(PARK, {"tenant": other})
            await session.commit()


class CountingSession:
    """Stands in for a session: counts statements, finds nothing."""

    def __init__(self) -> None:
        self.statements = 0

    async def execute(self, *_: Any) -> list[Any]:
        self.statements += 1
        return []


async def test_the_content_cache_reads_each_tenant_at_most_once_per_ttl() -> None:
    cache = service.TenantContentCache(ttl=60)
    session = CountingSession()
    first = await cache.current(session, ["t1", "t2", "t1"])  # type: ignore[arg-type]
    assert first == {"t1": service.NO_CONTENT, "t2": service.NO_CONTENT}
    assert session.statements == 2  # branding and templates, for every tenant due at once
    for _ in range(100):
        await cache.current(session, ["t1", "t2"])  # type: ignore[arg-type]
    assert session.statements == 2
    cache.forget("t1")  # a change published through this process
    await cache.current(session, ["t1", "t2"])  # type: ignore[arg-type]
    assert session.statements == 4

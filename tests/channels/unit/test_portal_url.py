"""The customer portal link in channels' messages (``portal_url``): minted per SMS and e-mail at dispatch with the
shared portal key (shared/portal_links.py), for the contact's tenant and account, only when PORTAL_BASE_URL is
set; previews render a placeholder; the built-in texts print it before the opt-out line. Pure: no infrastructure."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from devstack.sms_sandbox import MAX_BODY_CHARS
from services.channels import service
from services.channels.domain import templates as tpl
from services.channels.domain.messages import OutgoingEmail, OutgoingSms
from services.channels.settings import Settings
from services.channels.workers.dispatcher import portal_links
from services.plans.settings import Settings as PlansSettings
from shared import portal_links as links
from shared.crypto import PiiCipher
from shared.settings import DEV_PII_KEYS

CIPHER = PiiCipher(DEV_PII_KEYS, "dev1")
BASE = "https://portal.example.com"
URL = re.compile(re.escape(BASE) + r"/portal/l/([A-Za-z0-9_-]+)")


def row(tenant: str = "tenant-a", account_id: str = "ACC-4711", *, channel: str = "sms", locale: str = "zh-CN",
        n: int = 1) -> Any:
    """A claimed contact attempt as the dispatcher sees it."""
    destination = "+8613812345678" if channel == "sms" else "kunde@example.com"
    return SimpleNamespace(
        contact_id=f"c-{n}", tenant=tenant, customer_id="C-1", account_id=account_id, account_ref="4711",
        channel=channel, template_id=f"reminder.{channel}", locale=locale, days_past_due=12, overdue_minor=123_456,
        currency="CNY", due_date=date(2026, 3, 1), destination_sealed=CIPHER.seal(destination, context=tenant))


def settings(**overrides: Any) -> Settings:
    return Settings(app_env="test", **overrides)


def body(message: OutgoingSms | OutgoingEmail) -> str:
    return message.body


def test_the_rendered_sms_carries_a_link_plans_key_accepts_for_the_right_tenant_and_account() -> None:
    s = settings(portal_base_url=BASE + "/")
    portal = portal_links(s)
    assert portal is not None and portal.base_url == BASE  # the trailing slash is dropped
    rows = [row("tenant-a", "ACC-1", n=1), row("tenant-b", "ACC-2", locale="en", n=2),
            row("tenant-a", "ACC-3", channel="email", n=3)]
    before = time.time()
    ready, unusable = service.prepare_messages(rows, CIPHER, portal=portal)
    assert unusable == [] and len(ready) == 3
    nonces = set()
    for r, message in zip(rows, ready, strict=True):
        [token] = URL.findall(body(message))
        claims = links.verify(token, PlansSettings(app_env="test").portal_key, now=time.time())
        assert (claims.tenant, claims.account_id) == (r.tenant, r.account_id)
        assert before + 72 * 3600 - 5 <= claims.expires_at <= time.time() + 72 * 3600
        nonces.add(claims.nonce)
        # past its expiry, or under another key, plans refuses it
        with pytest.raises(links.LinkExpired):
            links.verify(token, s.portal_key, now=claims.expires_at)
        with pytest.raises(links.LinkInvalid):
            links.verify(token, b"another-deployments-portal-key!!", now=time.time())
    assert len(nonces) == 3  # one link per message, each usable once
    zh, en, mail = (body(m) for m in ready)
    assert re.search(r"在线协商：" + URL.pattern + " 回复TD退订$", zh)
    assert re.search(r"Agree a plan online: " + URL.pattern + r" Reply STOP to opt out\.$", en)
    assert "请打开您的专属链接（仅可使用一次）" in mail


def test_the_link_lives_portal_link_ttl_hours() -> None:
    portal = portal_links(settings(portal_base_url=BASE, portal_link_ttl_hours=2))
    assert portal is not None
    now = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    url = portal(row(), now=now)
    assert url is not None
    claims = links.verify(URL.fullmatch(url).group(1), settings().portal_key,  # type: ignore[union-attr]
                          now=now.timestamp())
    assert claims.expires_at == int((now + timedelta(hours=2)).timestamp())


def test_without_portal_base_url_messages_carry_no_portal_link() -> None:
    s = settings()
    assert s.portal_base_url is None and portal_links(s) is None
    assert portal_links(settings(portal_base_url="  ")) is None  # an empty variable is unset
    ready, _ = service.prepare_messages([row(), row(locale="en", n=2), row(channel="email", n=3)], CIPHER)
    for message in ready:
        assert "/portal/l/" not in body(message)
        assert "在线协商" not in body(message) and "online" not in body(message)


def test_an_account_id_no_link_can_carry_sends_the_message_without_a_link() -> None:
    portal = portal_links(settings(portal_base_url=BASE))
    ready, unusable = service.prepare_messages([row(account_id="ACC\x01")], CIPHER, portal=portal)
    assert unusable == [] and "/portal/l/" not in body(ready[0]) and "回复TD退订" in body(ready[0])


def test_channels_and_plans_sign_with_the_same_key(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings().portal_key == PlansSettings(app_env="test").portal_key  # derived from IDENTITY_KEY
    assert settings().portal_key == links.portal_key(settings().identity_secret, None)
    monkeypatch.setenv("PORTAL_SECRET", "s" * 40)
    monkeypatch.setenv("PORTAL_BASE_URL", BASE)
    monkeypatch.setenv("PORTAL_LINK_TTL_HOURS", "5")
    for s in (settings(), PlansSettings(app_env="test")):
        assert (s.portal_key, s.portal_base_url, s.portal_link_ttl_hours) == (b"s" * 40, BASE, 5)
        assert "s" * 40 not in repr(s)
    monkeypatch.setenv("PORTAL_SECRET", "short")
    with pytest.raises(ValueError, match=r"(?i)portal_secret"):
        settings()
    monkeypatch.setenv("PORTAL_SECRET", "s" * 40)
    monkeypatch.setenv("PORTAL_BASE_URL", "ftp://portal.example.com")
    with pytest.raises(ValueError, match=r"(?i)portal_base_url"):
        PlansSettings(app_env="test")


def test_the_url_is_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    portal = portal_links(settings(portal_base_url=BASE))
    caplog.set_level(logging.DEBUG)
    ready, _ = service.prepare_messages([row(), row(channel="email", n=2)], CIPHER, portal=portal)
    tokens = [URL.findall(body(m))[0] for m in ready]
    assert len(tokens) == 2
    assert not [t for t in tokens if t in caplog.text]
    assert portal is not None and repr(portal.key) not in repr(portal)


def test_portal_url_is_a_template_variable_and_previews_render_a_placeholder() -> None:
    assert "portal_url" in tpl.VARIABLES
    source = tpl.BUILT_INS["zh-CN"].templates["reminder.sms"].body_source
    sample = tpl.TemplateContext("8842", 12, 123456, "CNY", date(2026, 3, 1), "zh-CN")
    shown = tpl.preview(subject="", body=source, locale="zh-CN", channel="sms", sample=sample)
    assert tpl.SAMPLE_PORTAL_URL in shown.rendered.body and shown.sendable
    assert tpl.SAMPLE_UNSUBSCRIBE_URL not in shown.rendered.body  # an SMS has no unsubscribe link
    email = tpl.BUILT_INS["en"].templates["reminder.email"]
    shown = tpl.preview(subject=email.subject_source, body=email.body_source, locale="en", channel="email",
                        sample=replace(sample, locale="en"))
    assert tpl.SAMPLE_PORTAL_URL in shown.rendered.body and shown.sendable


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
@pytest.mark.parametrize("template_id", tpl.TEMPLATE_IDS)
def test_builtins_print_the_link_only_when_there_is_one_and_stay_within_the_sms_limit(locale: str,
                                                                                      template_id: str) -> None:
    # the longest: a 60-character lender, a 128-character account id, help and complaint lines
    token = links.mint(b"k" * 32, tenant="t" * 64, account_id="A" * 128, nonce=bytes(16), expires_at=2**40)
    url = f"{BASE}/portal/l/{token}"
    ctx = tpl.TemplateContext("8842", 12, 10**13, "CNY", date(2026, 3, 1), locale, lender="L" * 60,
                              help_line="+1 202-555-0173", complaint_line="+1 202-555-0188", portal_url=url,
                              unsubscribe_url=tpl.SAMPLE_UNSUBSCRIBE_URL if template_id.endswith("email") else None)
    text = tpl.render(template_id, ctx).body
    assert text.count(url) == 1
    if template_id.endswith(".sms"):
        assert len(text) <= MAX_BODY_CHARS
    assert url not in tpl.render(template_id, replace(ctx, portal_url=None)).body


def test_make_run_points_portal_links_at_the_local_plans(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from devstack.stack import LocalStack, Ports

    monkeypatch.delenv("PORTAL_BASE_URL", raising=False)
    stack = LocalStack(tmp_path, Ports(), database_url="postgresql+asyncpg://x", kafka="127.0.0.1:1")
    env = stack.service_env()
    assert env["PORTAL_BASE_URL"] == f"http://127.0.0.1:{stack.ports.of('plans')}"
    assert portal_links(Settings(app_env="test", portal_base_url=env["PORTAL_BASE_URL"])) is not None
    monkeypatch.setenv("PORTAL_BASE_URL", "https://portal.example.com")  # an operator's own address wins
    assert stack.service_env()["PORTAL_BASE_URL"] == "https://portal.example.com"

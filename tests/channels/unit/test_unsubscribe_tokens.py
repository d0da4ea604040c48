"""Unit tests for the e-mail unsubscribe links: the signed, expiring tokens (services/channels/domain/unsubscribe.py),
the settings that key them, the link in the e-mail templates, the RFC 8058 headers and the pages' language."""

from __future__ import annotations

import base64
import email
import email.generator
import email.policy
import io
import uuid
from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.channels.adapters.mail import POLICY, unsubscribe_headers
from services.channels.api.unsubscribe import page, preferred_locale
from services.channels.domain.templates import SAMPLE_UNSUBSCRIBE_URL, TEMPLATE_IDS, TemplateContext, preview, render
from services.channels.domain.unsubscribe import TokenExpired, TokenInvalid, Unsubscribe, issue, read
from services.channels.settings import DERIVED_UNSUBSCRIBE_KEY_ID, Settings

PROPS = settings(max_examples=200, deadline=None, database=None)
NOW = 1_760_000_000
KEY = b"k" * 32
KEYS = {"u1": KEY}
CLAIMS = Unsubscribe(tenant="tenant-a", customer_id="C-100042", contact_id=str(uuid.uuid4()),
                     destination_key="cp1:" + "0123456789abcdef" * 2, locale="zh-CN", expires_at=NOW + 60 * 86_400)


def token(claims: Unsubscribe = CLAIMS, *, key_id: str = "u1", key: bytes = KEY) -> str:
    return issue(claims, key_id=key_id, key=key)


def test_a_token_round_trips_and_is_compact_and_url_safe() -> None:
    t = token()
    assert read(t, keys=KEYS, now=NOW) == CLAIMS
    assert len(t) <= 120 and all(c.isalnum() or c in "-_" for c in t)
    assert CLAIMS.message_id == f"unsub:{CLAIMS.contact_id}"


def test_a_contact_id_that_is_no_uuid_and_non_ascii_ids_round_trip() -> None:
    claims = replace(CLAIMS, contact_id="c-opt-17", customer_id="客户-7" * 20, locale="en")
    assert read(token(claims), keys=KEYS, now=NOW) == claims


def test_the_address_is_never_in_the_token() -> None:
    decoded = base64.urlsafe_b64decode(token() + "==")
    # only the 16 bytes of the keyed hash (never its text, nor an address: the claims hold none); the signature's
    # random bytes may contain any byte, so no single byte such as "@" is checked
    assert b"cp1" not in decoded and b"0123456789abcdef" not in decoded


def test_an_expired_token_is_expired_with_its_locale() -> None:
    with pytest.raises(TokenExpired) as raised:
        read(token(), keys=KEYS, now=CLAIMS.expires_at)
    assert raised.value.claims.locale == "zh-CN" and raised.value.reason == "expired"
    assert read(token(), keys=KEYS, now=CLAIMS.expires_at - 1) == CLAIMS


@pytest.mark.parametrize("bad", ["", "x", "a" * 5000, "AQJpMW!a", "AQJpMWta=", "Zm9v", "AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                                 "é" * 20])
def test_garbage_is_invalid(bad: str) -> None:
    with pytest.raises(TokenInvalid):
        read(bad, keys=KEYS, now=NOW)


def test_another_key_or_an_unknown_key_id_is_invalid() -> None:
    with pytest.raises(TokenInvalid):
        read(token(key=b"x" * 32), keys=KEYS, now=NOW)
    with pytest.raises(TokenInvalid):
        read(token(key_id="u2"), keys=KEYS, now=NOW)
    assert read(token(key_id="u2", key=b"y" * 32), keys={**KEYS, "u2": b"y" * 32}, now=NOW) == CLAIMS  # rotation


def test_claims_changed_for_another_tenant_are_invalid() -> None:
    """Re-signing is impossible without the key: a token edited to name another tenant (or customer, or a later
    expiry) is refused, expired or not."""
    raw = bytearray(base64.urlsafe_b64decode(token() + "=="))
    at = raw.index(b"tenant-a")
    raw[at:at + 8] = b"tenant-b"
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(TokenInvalid):
        read(forged, keys=KEYS, now=NOW)
    with pytest.raises(TokenInvalid):  # tampered beats expired: a forged token never reaches the expiry check
        read(forged, keys=KEYS, now=CLAIMS.expires_at + 1)


@PROPS
@given(position=st.integers(0, 10_000), bit=st.integers(0, 7))
def test_any_flipped_bit_is_refused(position: int, bit: int) -> None:
    raw = bytearray(base64.urlsafe_b64decode(token() + "=="))
    raw[position % len(raw)] ^= 1 << bit
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(TokenInvalid):
        read(forged, keys=KEYS, now=NOW)


@PROPS
@given(text=st.text(max_size=300))
def test_any_string_is_refused_never_an_error(text: str) -> None:
    with pytest.raises(TokenInvalid):
        read(text, keys=KEYS, now=NOW)


@pytest.mark.parametrize("change", [{"destination_key": "kunde@example.com"}, {"locale": "de"}, {"tenant": "a b"},
                                    {"expires_at": 2**32}])
def test_claims_that_cannot_be_carried_are_refused_when_issued(change: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        token(replace(CLAIMS, **change))  # type: ignore[arg-type]


# --- settings ---------------------------------------------------------------------------------------

def test_without_keys_a_key_derived_from_the_identity_key_signs() -> None:
    s = Settings(app_env="test")
    assert s.unsubscribe_active_key == DERIVED_UNSUBSCRIBE_KEY_ID and s.unsubscribe_ttl_days == 60
    assert list(s.unsubscribe_signing_keys) == [DERIVED_UNSUBSCRIBE_KEY_ID]
    assert len(s.unsubscribe_signing_keys[DERIVED_UNSUBSCRIBE_KEY_ID]) == 32
    other = Settings(app_env="test", identity_key=base64.b64encode(b"another identity key!").decode())
    assert other.unsubscribe_signing_keys != s.unsubscribe_signing_keys


def test_configured_keys_sign_and_the_derived_one_is_still_accepted() -> None:
    k1, k2 = (base64.b64encode(bytes([i]) * 32).decode() for i in (1, 2))
    single = Settings(app_env="test", unsubscribe_keys=f"u1={k1}")
    assert single.unsubscribe_active_key == "u1"
    assert set(single.unsubscribe_signing_keys) == {"u1", DERIVED_UNSUBSCRIBE_KEY_ID}
    both = Settings(app_env="test", unsubscribe_keys=f'{{"u1": "{k1}", "u2": "{k2}"}}', unsubscribe_active_key="u2")
    assert both.unsubscribe_signing_keys["u2"] == bytes([2]) * 32
    assert "u1=" not in repr(single) and k1 not in repr(single)


@pytest.mark.parametrize("values", [
    {"unsubscribe_keys": "u1=" + base64.b64encode(b"short").decode()},
    {"unsubscribe_keys": "u1=not base64!"},
    {"unsubscribe_keys": "i1=" + base64.b64encode(b"k" * 32).decode()},
    {"unsubscribe_keys": "u1"},
    {"unsubscribe_active_key": "nope"},
    {"unsubscribe_ttl_days": 0},
])
def test_bad_unsubscribe_settings_are_refused(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(app_env="test", **values)  # type: ignore[arg-type]


def test_the_link_base_is_the_public_url_and_none_in_prod_without_one() -> None:
    assert Settings(app_env="test", public_base_url="https://c.example/").unsubscribe_base_url == "https://c.example"
    assert Settings(app_env="test").unsubscribe_base_url == "http://127.0.0.1:8004"
    prod = Settings(app_env="test")
    prod.app_env = "prod"  # (a prod Settings needs real secrets: the property is what is tested)
    assert prod.unsubscribe_base_url is None
    prod.public_base_url = "https://c.example"
    assert prod.unsubscribe_base_url == "https://c.example"


# --- templates, headers, pages ----------------------------------------------------------------------

def _ctx(locale: str, url: str | None) -> TemplateContext:
    return TemplateContext("8842", 12, 123456, "CNY", date(2026, 3, 1), locale, unsubscribe_url=url)


@pytest.mark.parametrize("template_id", [t for t in TEMPLATE_IDS if t.endswith(".email")])
@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_every_email_prints_its_unsubscribe_link(template_id: str, locale: str) -> None:
    url = f"https://c.example/v1/unsubscribe/{token()}-_x"  # the real link is never linted as words
    body = render(template_id, _ctx(locale, url)).body
    assert body.endswith(url) and ("退订" if locale == "zh-CN" else "unsubscribe") in body
    assert "reply" not in body.lower() and "回复" not in body
    without = render(template_id, _ctx(locale, None)).body  # no public address: the opt-out in words, as before
    assert "unsubscribe/" not in without and ("回复“退订”" in without or "reply STOP" in without)


def test_sms_never_carry_the_link() -> None:
    for locale in ("zh-CN", "en"):
        assert "unsubscribe/" not in render("reminder.sms", _ctx(locale, "https://c.example/v1/unsubscribe/x")).body


def test_an_email_preview_without_the_link_is_not_sendable() -> None:
    sample = _ctx("en", None)
    source = ("{{ lender }}: {{ amount }} due {{ due_date }}. Contact us with questions or complaints. "
              "Reply STOP to opt out.")
    without = preview(subject="s", body=source, locale="en", channel="email", sample=sample)
    assert [(f.rule, f.severity) for f in without.findings] == [("unsubscribe_link", "error")]
    assert not without.sendable  # as publishing it is refused (check_version)
    linked = preview(subject="s", body=source + " {{ unsubscribe_url }}", locale="en", channel="email", sample=sample)
    assert linked.findings == [] and linked.rendered.body.endswith(SAMPLE_UNSUBSCRIBE_URL)


def test_the_one_click_headers_stay_on_one_line_unencoded() -> None:
    url = f"https://collections.example.com/v1/unsubscribe/{token()}"
    msg = email.message.EmailMessage(policy=POLICY)
    msg["Subject"] = "还款提醒：尾号8842的账户已逾期12天" * 3
    for name, value in unsubscribe_headers(url).items():
        msg[name] = value
    msg.set_content("正文")
    out = io.BytesIO()
    email.generator.BytesGenerator(out, policy=email.policy.SMTP).flatten(msg)  # as aiosmtplib flattens it
    raw = out.getvalue().decode()
    assert f"List-Unsubscribe: <{url}>\r\n" in raw and "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in raw
    parsed = email.message_from_string(raw, policy=email.policy.default)
    assert str(parsed["Subject"]).startswith("还款提醒")
    assert unsubscribe_headers(None) == {} and unsubscribe_headers("https://x.example/" + "a" * 1000) == {}


@pytest.mark.parametrize(("header", "locale"), [
    (None, "en"), ("", "en"), ("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"), ("en-GB,en;q=0.9,zh;q=0.8", "en"),
    ("fr, zh-TW;q=0.5", "zh-CN"), ("de", "en"), ("en;q=0.2, zh;q=0.9", "zh-CN"), ("zh;q=x", "en"), (";;,,", "en"),
])
def test_the_page_language_follows_accept_language(header: str | None, locale: str) -> None:
    assert preferred_locale(header) == locale


@pytest.mark.parametrize("kind", ["confirm", "done", "invalid", "expired"])
@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_pages_are_self_contained_and_only_the_confirmation_has_a_form(kind: str, locale: str) -> None:
    response = page(kind, locale, days=60)
    body = bytes(response.body).decode()
    assert f'<html lang="{locale}">' in body and "<h1>" in body
    assert ("<form method=\"post\"><button type=\"submit\">" in body) == (kind == "confirm")
    assert "http" not in body and "<script" not in body  # no third-party asset, no script
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"
    assert response.status_code == {"confirm": 200, "done": 200, "invalid": 400, "expired": 410}[kind]
    if kind == "expired":
        assert "60" in body

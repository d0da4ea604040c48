"""Webhook signatures and endpoint rules (services/plans/domain/signing.py): a signature verifies; any change of
body, timestamp or secret fails; an old or future timestamp fails; hostile URLs are refused with their reasons;
the backoff doubles from its base, is capped and jittered."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from services.plans.domain.signing import (
    SECRET_PREFIX,
    TOLERANCE_S,
    SignatureInvalid,
    endpoint_problems,
    new_secret,
    retry_delay_s,
    sign,
    verify,
)

PROPS = settings(max_examples=300, deadline=None, database=None)
NOW = 1_790_000_000
secrets_ = st.text(min_size=1, max_size=60)
bodies = st.binary(max_size=2000)
times = st.integers(0, 2**40)


def test_the_header_is_t_and_v1_as_documented() -> None:
    secret, body = "whsec_test", b'{"id":"e1"}'
    header = sign(secret, body, timestamp=NOW)
    expected = hmac.new(secret.encode(), f"{NOW}.".encode() + body, hashlib.sha256).hexdigest()
    assert header == f"t={NOW},v1={expected}"
    assert verify(secret, body, header, now=NOW + TOLERANCE_S) == NOW
    assert verify(secret, body, f"v1=0000,{header}", now=NOW) == NOW  # one matching v1 is enough


def test_a_new_secret_is_prefixed_and_random() -> None:
    a, b = new_secret(), new_secret()
    assert a.startswith(SECRET_PREFIX) and len(a) >= len(SECRET_PREFIX) + 43 and a != b


@PROPS
@given(secret=secrets_, body=bodies, at=times, skew=st.integers(-TOLERANCE_S, TOLERANCE_S))
def test_a_signature_verifies_within_the_tolerance(secret: str, body: bytes, at: int, skew: int) -> None:
    assert verify(secret, body, sign(secret, body, timestamp=at), now=at + skew) == at


@PROPS
@given(secret=secrets_, body=bodies, other=bodies, at=times)
def test_another_body_fails(secret: str, body: bytes, other: bytes, at: int) -> None:
    assume(other != body)
    with pytest.raises(SignatureInvalid):
        verify(secret, other, sign(secret, body, timestamp=at), now=at)


@PROPS
@given(secret=secrets_, other=secrets_, body=bodies, at=times)
def test_another_secret_fails(secret: str, other: str, body: bytes, at: int) -> None:
    assume(other != secret)
    with pytest.raises(SignatureInvalid):
        verify(other, body, sign(secret, body, timestamp=at), now=at)


@PROPS
@given(secret=secrets_, body=bodies, at=times, shift=st.integers(1, 10**6))
def test_a_changed_timestamp_fails(secret: str, body: bytes, at: int, shift: int) -> None:
    mac = sign(secret, body, timestamp=at).split(",v1=")[1]
    forged = f"t={at + shift},v1={mac}"  # a captured signature moved to a fresh time
    with pytest.raises(SignatureInvalid):
        verify(secret, body, forged, now=at + shift)


@PROPS
@given(secret=secrets_, body=bodies, at=times, age=st.integers(TOLERANCE_S + 1, 10**8))
def test_an_old_or_future_timestamp_fails(secret: str, body: bytes, at: int, age: int) -> None:
    header = sign(secret, body, timestamp=at)
    with pytest.raises(SignatureInvalid, match="tolerance"):
        verify(secret, body, header, now=at + age)
    with pytest.raises(SignatureInvalid, match="tolerance"):
        verify(secret, body, header, now=at - age)


@pytest.mark.parametrize("header", ["", "t=1", "v1=abc", "t=abc,v1=abc", "garbage", "t=-5,v1=00",
                                    "t=99999999999999999999,v1=00", "t=\u00b2,v1=00"])
def test_a_malformed_header_fails(header: str) -> None:
    with pytest.raises(SignatureInvalid):
        verify("s", b"{}", header, now=NOW)


@pytest.mark.parametrize("url", ["https://partner.example/hooks", "http://partner.example:8080/a?b=c",
                                 "https://8.8.8.8/x", "https://[2001:4860:4860::8888]/x"])
def test_public_http_urls_are_accepted(url: str) -> None:
    assert endpoint_problems(url, allow_private=False) == []


@pytest.mark.parametrize(("url", "why"), [
    ("ftp://partner.example/x", "http or https"),
    ("javascript:alert(1)", "http or https"),
    ("https://user:pw@partner.example/x", "credentials"),
    ("https://token@partner.example/x", "credentials"),
    ("https:///path", "no host"),
    ("https://partner.example/" + "a" * 2000, "at most 2000"),
    ("https://partner.example/a b", "spaces"),
    ("https://partner.example/\x00", "control"),
    ("https://partner.example:99999/", "parsed"),
    ("http://127.0.0.1:8080/", "private or loopback"),
    ("http://localhost/", "private or loopback"),
    ("http://10.1.2.3/", "private or loopback"),
    ("http://192.168.0.10/", "private or loopback"),
    ("http://169.254.169.254/latest/meta-data", "private or loopback"),
    ("http://[::1]/", "private or loopback"),
    ("http://[::ffff:10.0.0.1]/", "private or loopback"),
    ("http://0.0.0.0/", "private or loopback"),
    ("http://100.64.0.1/", "private or loopback"),
])
def test_hostile_urls_are_refused_with_a_reason(url: str, why: str) -> None:
    problems = endpoint_problems(url, allow_private=False)
    assert problems and any(why in p for p in problems), problems


def test_private_addresses_are_allowed_when_the_setting_says_so() -> None:
    assert endpoint_problems("http://127.0.0.1:8080/hook", allow_private=True) == []
    assert endpoint_problems("https://user:pw@127.0.0.1/", allow_private=True) != []  # credentials still refused


def test_backoff_doubles_from_a_minute_is_capped_at_an_hour_and_jittered() -> None:
    assert [retry_delay_s(n) for n in range(1, 9)] == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert retry_delay_s(1, jitter=0.0) == pytest.approx(48) and retry_delay_s(1, jitter=1.0) == pytest.approx(72)
    assert retry_delay_s(7, jitter=1.0) == 3600  # never above the cap
    assert retry_delay_s(10**6) == 3600

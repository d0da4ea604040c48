"""The portal's signed links (services/plans/portal/links.py): pure, no infrastructure."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.plans.portal import links

SECRET = b"k" * 32
NONCE = bytes(range(16))


def mint(tenant: str = "tenant-a", account_id: str = "ACC-1", expires_at: int = 2_000, nonce: bytes = NONCE,
         secret: bytes = SECRET) -> str:
    return links.mint(secret, tenant=tenant, account_id=account_id, nonce=nonce, expires_at=expires_at)


def test_a_minted_link_verifies_to_its_claims_and_is_url_safe() -> None:
    token = mint()
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert links.verify(token, SECRET, now=1_999) == links.PortalLink("tenant-a", "ACC-1", NONCE.hex(), 2_000)


def test_each_nonce_makes_another_link() -> None:
    assert mint() != mint(nonce=bytes(16))


def test_a_link_past_its_expiry_is_expired_and_still_names_its_claims() -> None:
    with pytest.raises(links.LinkExpired) as caught:
        links.verify(mint(), SECRET, now=2_000)
    assert caught.value.claims.account_id == "ACC-1"
    assert caught.value.reason == "expired"


def test_another_key_or_any_changed_byte_is_invalid() -> None:
    token = mint()
    with pytest.raises(links.LinkInvalid):
        links.verify(token, b"x" * 32, now=0)
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    for i in range(len(raw)):
        changed = bytearray(raw)
        changed[i] ^= 1
        forged = base64.urlsafe_b64encode(bytes(changed)).rstrip(b"=").decode()
        with pytest.raises(links.LinkInvalid):
            links.verify(forged, SECRET, now=0)


def test_a_changed_claim_cannot_reuse_the_signature() -> None:
    def raw(token: str) -> bytes:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))

    token, other = raw(mint(account_id="ACC-1")), raw(mint(account_id="ACC-2"))
    # the MAC of ACC-1 on the body of ACC-2
    spliced = base64.urlsafe_b64encode(other[:-links.MAC_BYTES] + token[-links.MAC_BYTES:]).rstrip(b"=").decode()
    with pytest.raises(links.LinkInvalid):
        links.verify(spliced, SECRET, now=0)


@pytest.mark.parametrize("token", ["", "a", "!!!!", "x" * 5000, "é", "AAAA\x00", "A" * 80, "====", "a/b"])
def test_garbage_is_invalid_never_an_exception_of_another_kind(token: str) -> None:
    with pytest.raises(links.LinkInvalid):
        links.verify(token, SECRET, now=0)


def test_minting_refuses_what_could_not_be_read_back() -> None:
    for bad in ({"nonce": b"short"}, {"tenant": "bad tenant"}, {"account_id": "A\x00"}, {"account_id": ""},
                {"account_id": "A" * 256}):
        with pytest.raises(ValueError):
            mint(**bad)  # type: ignore[arg-type]


PRINTABLE = st.characters(min_codepoint=32, exclude_characters="\x7f", exclude_categories=("Cs",))


@given(tenant=st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True),
       account_id=st.text(PRINTABLE, min_size=1, max_size=60),
       expires_at=st.integers(min_value=1, max_value=2**40), nonce=st.binary(min_size=16, max_size=16))
def test_every_link_round_trips(tenant: str, account_id: str, expires_at: int, nonce: bytes) -> None:
    token = mint(tenant, account_id, expires_at, nonce)
    assert links.verify(token, SECRET, now=expires_at - 1) == links.PortalLink(tenant, account_id, nonce.hex(),
                                                                                expires_at)


@given(st.text(max_size=200))
def test_any_text_is_refused_as_invalid_or_read(text: str) -> None:
    try:
        links.verify(text, SECRET, now=0)
    except links.LinkError:
        return
    raise AssertionError("an unsigned text was accepted")


def test_plans_links_are_the_shared_links_and_the_key_is_derived_as_before() -> None:
    import hashlib
    import hmac

    from shared import portal_links

    assert links.mint is portal_links.mint and links.verify is portal_links.verify
    assert links.LinkExpired is portal_links.LinkExpired and links.PortalLink is portal_links.PortalLink
    identity = b"i" * 32
    # the derivation plans used before the key moved to the shared settings: links already sent keep working
    assert portal_links.portal_key(identity, None) == hmac.new(
        identity, b"gentle-collections/plans/portal-link-key/v1", hashlib.sha256).digest()
    assert portal_links.portal_key(identity, "") == portal_links.portal_key(identity, None)
    assert portal_links.portal_key(identity, "p" * 32) == b"p" * 32
    assert portal_links.portal_key(b"j" * 32, None) != portal_links.portal_key(identity, None)

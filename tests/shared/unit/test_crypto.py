"""Unit tests for field-level PII encryption (shared/crypto.py)."""

from __future__ import annotations

import base64
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.crypto import PREFIX, PiiCipher, PiiCryptoError, is_sealed

PROPS = settings(max_examples=200, deadline=None, database=None)


def new_key(size: int = 32) -> str:
    return base64.b64encode(os.urandom(size)).decode()


K1, K2 = new_key(), new_key()
CIPHER = PiiCipher({"k1": K1}, "k1")
TENANT = "tenant-a"


def blob(sealed: str) -> bytes:
    return base64.urlsafe_b64decode(sealed.split(":", 3)[3])


def with_blob(sealed: str, raw: bytes) -> str:
    return sealed.rsplit(":", 1)[0] + ":" + base64.urlsafe_b64encode(raw).decode()


@PROPS
@given(text=st.text(max_size=200) | st.sampled_from(["张三", "北京市朝阳区建国路88号", "+8613812345678"]),
       context=st.sampled_from(["", "tenant-a", "租户乙"]))
def test_seal_open_round_trip(text: str, context: str) -> None:
    sealed = CIPHER.seal(text, context=context)
    assert is_sealed(sealed)
    assert sealed.startswith(f"{PREFIX}k1:")
    assert CIPHER.open(sealed, context=context) == text


@PROPS
@given(text=st.text(min_size=8, max_size=100))
def test_sealed_value_never_contains_the_plaintext(text: str) -> None:
    sealed = CIPHER.seal(text, context=TENANT)
    assert text not in sealed
    assert text.encode() not in blob(sealed)


def test_ciphertext_differs_each_time_and_hides_pii() -> None:
    phone = "+8613812345678"
    seals = {CIPHER.seal(phone, context=TENANT) for _ in range(20)}
    assert len(seals) == 20
    assert len({blob(s)[:12] for s in seals}) == 20  # fresh nonce each time
    for sealed in seals:
        assert phone not in sealed
        assert "13812345678" not in sealed
        assert b"13812345678" not in blob(sealed)
        assert CIPHER.open(sealed, context=TENANT) == phone


@pytest.mark.parametrize(("seal_ctx", "open_ctx"),
                         [("tenant-a", "tenant-b"), ("tenant-a", ""), ("", "tenant-a")])
def test_wrong_context_fails(seal_ctx: str, open_ctx: str) -> None:
    sealed = CIPHER.seal("张三", context=seal_ctx)
    with pytest.raises(PiiCryptoError, match="authentication"):
        CIPHER.open(sealed, context=open_ctx)


@pytest.mark.parametrize("position", [0, 11, 12, 15, -1])  # nonce, ciphertext, tag
def test_tampering_fails(position: int) -> None:
    sealed = CIPHER.seal("zhang.san@example.com", context=TENANT)
    raw = bytearray(blob(sealed))
    raw[position] ^= 0x01
    with pytest.raises(PiiCryptoError):
        CIPHER.open(with_blob(sealed, bytes(raw)), context=TENANT)


def test_truncated_or_extended_ciphertext_fails() -> None:
    sealed = CIPHER.seal("zhang.san@example.com", context=TENANT)
    raw = blob(sealed)
    for changed in (raw[:-1], raw + b"\x00", raw[:5]):
        with pytest.raises(PiiCryptoError):
            CIPHER.open(with_blob(sealed, changed), context=TENANT)


def test_swapping_key_id_fails() -> None:
    both = PiiCipher({"k1": K1, "k2": K2}, "k1")
    sealed = both.seal("张三", context=TENANT)
    with pytest.raises(PiiCryptoError):
        both.open(sealed.replace(":k1:", ":k2:"), context=TENANT)


def test_unknown_key_id_fails() -> None:
    sealed = PiiCipher({"k9": K2}, "k9").seal("张三", context=TENANT)
    with pytest.raises(PiiCryptoError, match="unknown PII key id 'k9'"):
        CIPHER.open(sealed, context=TENANT)


@pytest.mark.parametrize("value", ["张三", "", "pii:v1:k1", "pii:v2:k1:abc", "xpii:v1:k1:abc"])
def test_open_refuses_values_that_are_not_sealed(value: str) -> None:
    assert not is_sealed(value)
    with pytest.raises(PiiCryptoError, match="not a sealed"):
        CIPHER.open(value, context=TENANT)


def test_key_rotation() -> None:
    old = PiiCipher({"k1": K1}, "k1")
    sealed_old = old.seal("李四", context=TENANT)
    rotated = PiiCipher({"k1": K1, "k2": K2}, "k2")
    assert rotated.open(sealed_old, context=TENANT) == "李四"
    sealed_new = rotated.seal("李四", context=TENANT)
    assert sealed_new.startswith(f"{PREFIX}k2:")
    assert rotated.open(sealed_new, context=TENANT) == "李四"
    with pytest.raises(PiiCryptoError, match="unknown PII key id"):
        old.open(sealed_new, context=TENANT)


@pytest.mark.parametrize("size", [16, 24, 31, 33, 64])
def test_bad_key_length_rejected(size: int) -> None:
    with pytest.raises(ValueError, match=r"32 bytes|key must be"):
        PiiCipher({"k1": new_key(size)}, "k1")


def test_unknown_active_key_rejected() -> None:
    with pytest.raises(ValueError, match="active PII key 'k2' is unknown"):
        PiiCipher({"k1": K1}, "k2")


def test_optional_helpers() -> None:
    assert CIPHER.seal_optional(None, context=TENANT) is None
    assert CIPHER.open_optional(None, context=TENANT) is None
    sealed = CIPHER.seal_optional("王五", context=TENANT)
    assert sealed is not None and is_sealed(sealed)
    assert CIPHER.open_optional(sealed, context=TENANT) == "王五"


def test_corrupted_base64_raises_pii_crypto_error() -> None:
    sealed = CIPHER.seal("zhang.san@example.com", context=TENANT)
    with pytest.raises(PiiCryptoError):
        CIPHER.open(sealed[:-1], context=TENANT)  # one character lost: 'Incorrect padding'

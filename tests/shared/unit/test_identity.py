"""Unit tests for privacy-preserving identities (shared/identity.py)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.crypto import PiiCipher
from shared.identity import KEY_PATTERN, IdentityKeys, borrower_key_for, normalise_phone
from shared.settings import DEV_PII_KEYS

KEYS = IdentityKeys(b"k" * 32)
CIPHER = PiiCipher(DEV_PII_KEYS, "dev1")


@pytest.mark.parametrize("written", ["+8613812345678", "+86 138-1234-5678", "+86 (138) 1234 5678", "13812345678"])
def test_one_phone_written_many_ways_is_one_borrower(written: str) -> None:
    assert KEYS.borrower_key(national_id=None, phone=written) == KEYS.borrower_key(national_id=None,
                                                                                 phone="+8613812345678")


def test_the_national_id_identifies_the_borrower_before_the_phone() -> None:
    by_id = KEYS.borrower_key(national_id="110101 19900101 123x", phone="+8613812345678")
    assert by_id == KEYS.borrower_key(national_id="11010119900101123X", phone="+8613900000000")
    assert by_id != KEYS.borrower_key(national_id=None, phone="+8613812345678")


def test_keys_are_keyed_opaque_and_well_formed() -> None:
    key = KEYS.borrower_key(national_id=None, phone="+8613812345678")
    assert key is not None and re.fullmatch(KEY_PATTERN, key) and "13812345678" not in key
    assert IdentityKeys(b"other-secret-16b!").borrower_key(national_id=None, phone="+8613812345678") != key
    point = KEYS.contact_point_key(channel="sms", destination="+86 138 1234 5678")
    assert re.fullmatch(KEY_PATTERN, point) and point == KEYS.contact_point_key(channel="call",
                                                                                destination="+8613812345678")
    assert KEYS.contact_point_key(channel="email", destination=" Li@Example.com ") == KEYS.contact_point_key(
        channel="email", destination="li@example.com")


def test_nothing_usable_is_no_key() -> None:
    assert KEYS.borrower_key(national_id=None, phone=None) is None
    assert KEYS.borrower_key(national_id="  ", phone="not a number") is None
    with pytest.raises(ValueError):
        normalise_phone("12")
    with pytest.raises(ValueError):
        IdentityKeys(b"short")


def test_sealed_contact_points_open_for_their_tenant_only() -> None:
    phone = CIPHER.seal("+8613812345678", context="tenant-a")
    key = borrower_key_for(KEYS, CIPHER, tenant="tenant-a", national_id=None, phone=phone)
    assert key == KEYS.borrower_key(national_id=None, phone="+8613812345678")
    # sealed for another tenant: it does not open, so no key (never an error)
    assert borrower_key_for(KEYS, CIPHER, tenant="tenant-b", national_id=None, phone=phone) is None


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(max_size=40))
def test_any_input_gives_a_well_formed_key_or_none(value: str) -> None:
    key = KEYS.borrower_key(national_id=value, phone=value)
    assert key is None or re.fullmatch(KEY_PATTERN, key)

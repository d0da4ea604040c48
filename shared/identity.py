"""Privacy-preserving identities (docs/events.md, ``borrower_key``): one debtor across accounts and lenders,
and one contact point, as keyed hashes, so compliance can count contacts per person and per number without
storing a plaintext identifier.

``borrower_key`` is ``bk1:`` + the first 32 hex digits of HMAC-SHA256(IDENTITY_KEY, kind + ":" + value),
where the value is the national ID number (upper case, spaces and dashes removed) when the lender gave one,
else the phone number normalised to E.164 by ``phonenumbers`` (so ``+86 138-1234-5678`` and
``+8613812345678`` are one person). ``contact_point_key`` hashes a channel's destination the same way
(``cp1:``). One IDENTITY_KEY for the whole platform: rotate it only with a re-keying of stored keys.
"""

from __future__ import annotations

import hashlib
import hmac
import re

import phonenumbers

from shared.crypto import PiiCipher

BORROWER_PREFIX = "bk1:"
CONTACT_POINT_PREFIX = "cp1:"
KEY_PATTERN = r"^(bk1|cp1):[0-9a-f]{32}$"
_ID_NOISE = re.compile(r"[\s\-]")


_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def normalise_phone(value: str, region: str = "CN") -> str:
    """E.164 form of a phone number; ValueError when it cannot be one. A number already written in E.164 (as
    the contracts ask) is taken as it is: parsing it would give it back unchanged, at 30 times the cost."""
    if _E164.fullmatch(value):
        return value
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not a phone number: {exc}") from exc
    if not phonenumbers.is_possible_number(number):
        raise ValueError("not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_national_id(value: str) -> str:
    """A national ID number compared loosely: upper case, no spaces or dashes."""
    normalised = _ID_NOISE.sub("", value).upper()
    if not normalised:
        raise ValueError("empty national ID")
    return normalised


class IdentityKeys:
    """Computes borrower and contact-point keys with the platform's IDENTITY_KEY."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("IDENTITY_KEY must hold at least 16 bytes")
        self._secret = secret

    def _digest(self, prefix: str, kind: str, value: str) -> str:
        mac = hmac.new(self._secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
        return prefix + mac[:32]

    def borrower_key(self, *, national_id: str | None, phone: str | None) -> str | None:
        """The debtor's key from the national ID, else the phone; None when neither is usable."""
        if national_id:
            try:
                return self._digest(BORROWER_PREFIX, "id", normalise_national_id(national_id))
            except ValueError:
                pass
        if phone:
            try:
                return self._digest(BORROWER_PREFIX, "phone", normalise_phone(phone))
            except ValueError:
                return None
        return None

    def contact_point_key(self, *, channel: str, destination: str) -> str:
        """A contact point's key: phones normalised to E.164, addresses compared case-insensitively."""
        if channel in ("sms", "call"):
            try:
                return self._digest(CONTACT_POINT_PREFIX, "phone", normalise_phone(destination))
            except ValueError:
                pass
        return self._digest(CONTACT_POINT_PREFIX, channel, destination.strip().lower())


def borrower_key_for(identity: IdentityKeys, cipher: PiiCipher, *, tenant: str, national_id: str | None,
                     phone: str | None) -> str | None:
    """The borrower key of a contact whose national ID and phone are sealed for ``tenant``; None when
    neither opens to something usable (a value that does not open is treated as absent, never an error:
    the contact is still made, only not counted across lenders)."""
    def opened(sealed: str | None) -> str | None:
        if sealed is None:
            return None
        try:
            return cipher.open(sealed, context=tenant)
        except Exception:
            return None
    return identity.borrower_key(national_id=opened(national_id), phone=opened(phone))


def contact_point_key_for(identity: IdentityKeys, cipher: PiiCipher, *, tenant: str, channel: str,
                          sealed: str | None) -> str | None:
    """The contact-point key of a destination sealed for ``tenant``; None when it does not open."""
    if sealed is None:
        return None
    try:
        return identity.contact_point_key(channel=channel, destination=cipher.open(sealed, context=tenant))
    except Exception:
        return None

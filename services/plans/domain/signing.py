"""Signed webhooks (docs/partners.md, "Webhooks"): the signature, the endpoint rules and the retry schedule. Pure.

Each delivery is a POST of the CloudEvent's JSON with the header
``Webhook-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">``, keyed with the subscription's
secret (the whole ``whsec_...`` string as UTF-8). A receiver recomputes the HMAC over the raw bytes it received,
compares in constant time, and refuses a timestamp more than ``TOLERANCE_S`` away from its clock (a replayed
capture). Several ``v1=`` values may appear; one matching is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from urllib.parse import urlsplit

__all__ = ["HEADER", "MAX_URL_LENGTH", "SECRET_PREFIX", "TOLERANCE_S", "SignatureInvalid", "endpoint_problems",
           "is_public_address", "new_secret", "retry_delay_s", "sign", "verify"]

HEADER = "Webhook-Signature"
SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix, not a secret
TOLERANCE_S = 300
MAX_URL_LENGTH = 2000


class SignatureInvalid(ValueError):
    """A signature header that does not verify: malformed, too old (or too far ahead), or not matching."""


def new_secret() -> str:
    """A new subscription secret: ``whsec_`` and 256 random bits (URL-safe base64)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, *, timestamp: int) -> str:
    """The ``Webhook-Signature`` header value of ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify(secret: str, body: bytes, header: str, *, now: int, tolerance_s: int = TOLERANCE_S) -> int:
    """Check a ``Webhook-Signature`` header against the raw ``body``; returns its timestamp, else raises
    :class:`SignatureInvalid` saying why. Compares in constant time."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit() and len(value) <= 15:
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureInvalid("the header needs t=<unix seconds> and v1=<hex HMAC-SHA256>")
    if abs(now - timestamp) > tolerance_s:
        raise SignatureInvalid(f"the timestamp is {abs(now - timestamp)} s away from now (tolerance {tolerance_s} s)")
    expected = _mac(secret, timestamp, body).encode()
    if not any(hmac.compare_digest(expected, c.encode()) for c in candidates):  # every candidate, no early exit
        raise SignatureInvalid("no v1 signature matches the body")
    return timestamp


def is_public_address(address: str) -> bool:
    """Whether an IP address is one a webhook may be sent to: not private, loopback, link-local, multicast,
    reserved, unspecified or shared (carrier-grade NAT); an IPv4-mapped IPv6 address counts as its IPv4."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None and not is_public_address(str(embedded)):
            return False
    return ip.is_global and not ip.is_multicast


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64 or the old IPv4-compatible form), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 0xFFFF):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a host written the way ``inet_aton`` reads it stands for (``2130706433``, ``0x7f.1``,
    ``0177.0.0.1``, ``127.1``): resolvers and HTTP clients connect to it, so it is checked like a literal."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = []
    for part in parts:
        if re.fullmatch(r"0[xX][0-9a-fA-F]*", part):
            values.append(int(part[2:] or "0", 16))
        elif re.fullmatch(r"0[0-7]+", part):
            values.append(int(part, 8))
        elif re.fullmatch(r"[0-9]+", part):
            values.append(int(part))
        else:
            return None
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = last
    for i, v in enumerate(head):
        number |= v << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


def endpoint_problems(url: str, *, allow_private: bool) -> list[str]:
    """Every reason ``url`` cannot receive webhooks (none: it can): http or https only, a host, no user or
    password, at most ``MAX_URL_LENGTH`` characters, no control characters or spaces, and, unless
    ``allow_private``, no private or loopback address given literally (``localhost`` included). A name that
    resolves to such an address is refused when the delivery is attempted."""
    if len(url) > MAX_URL_LENGTH:
        return [f"the URL has {len(url)} characters; at most {MAX_URL_LENGTH}"]
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        return ["the URL has spaces or control characters"]
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError when out of range or not a number
    except ValueError as exc:
        return [f"the URL cannot be parsed: {exc}"]
    problems = []
    if parts.scheme not in ("http", "https"):
        problems.append("the URL must be http or https")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        problems.append("the URL must not carry credentials (user:password@): the signature authenticates us")
    if not host:
        problems.append("the URL has no host")
    elif not allow_private:
        name = host.rstrip(".")  # "localhost." is localhost
        literal: str | None = host
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            numeric = _numeric_ipv4(name)
            literal = None if numeric is None else str(numeric)
        if name == "localhost" or name.endswith(".localhost") or (literal and not is_public_address(literal)):
            problems.append(f"the host {host!r} is a private or loopback address")
    return problems


def retry_delay_s(attempts: int, *, base_s: float = 60.0, max_s: float = 3600.0, jitter: float = 0.5) -> float:
    """How long to wait after the ``attempts``-th failed attempt (1-based): ``base_s`` doubling per attempt, capped
    at ``max_s``, with ±20 % jitter (``jitter`` in [0, 1], 0.5 is none) so failed receivers are not hit in step;
    never above ``max_s``."""
    delay = min(base_s * 2 ** min(max(attempts - 1, 0), 32), max_s)
    return min(delay * (0.8 + 0.4 * min(max(jitter, 0.0), 1.0)), max_s)

"""API keys without a database: the format, hashing, roles, durations, and the verifier's cache (TTL, outage)."""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.access import keys, store
from shared.access.keys import ALL_ROLES, Principal, Role, mint, parse, parse_roles, secret_matches
from shared.access.verifier import KeyStoreUnavailable, KeyVerifier
from shared.tools.keys import duration, instant_or_duration

NOW = datetime(2030, 5, 1, 12, tzinfo=UTC)


def test_a_minted_key_parses_back_and_only_its_hash_is_kept() -> None:
    key = mint()
    assert key.text.startswith("gck_") and len(key.key_id) == 16 and len(key.secret) == 43
    assert parse(key.text) == (key.key_id, key.secret)
    assert key.secret_hash == hashlib.sha256(key.secret.encode()).hexdigest() and key.secret not in key.secret_hash
    assert secret_matches(key.secret, key.secret_hash)
    assert not secret_matches(key.secret[:-1] + ("a" if key.secret[-1] != "a" else "b"), key.secret_hash)
    assert mint().text != key.text


@pytest.mark.parametrize("text", ["", "dev-key-tenant-a", "gck_", "gck_0123456789abcdef_short",
                                  "gck_0123456789ABCDEF_" + "a" * 43, "gck_0123456789abcdef_" + "a" * 44,
                                  "xyz_0123456789abcdef_" + "a" * 43, "gck_0123456789abcdef_" + "a" * 42 + "-"])
def test_malformed_keys_do_not_parse(text: str) -> None:
    assert parse(text) is None


def test_roles_parse_and_unknown_ones_are_refused() -> None:
    assert parse_roles("agent, Supervisor") == {"agent", "supervisor"}
    assert ALL_ROLES == {r.value for r in Role}
    for bad in ("", "agent,root", " , "):
        with pytest.raises(ValueError, match="unknown or missing roles"):
            parse_roles(bad)
    assert keys.static_principal("tenant-a") == Principal("tenant-a", "static:tenant-a", ALL_ROLES)
    assert Principal("t", "p", frozenset({"agent"})).has_any({"agent", "compliance"})
    assert not Principal("t", "p", frozenset({"agent"})).has_any({"compliance"})


def test_durations_and_instants() -> None:
    assert duration("24h") == timedelta(hours=24) and duration("0s") == timedelta(0) and duration("90") == timedelta(
        seconds=90)
    assert instant_or_duration("90d") == timedelta(days=90)
    assert instant_or_duration("2031-01-01T00:00:00Z") == datetime(2031, 1, 1, tzinfo=UTC)
    for bad in ("soon", "2031-01-01T00:00:00", "5w"):
        with pytest.raises(argparse.ArgumentTypeError):
            instant_or_duration(bad)


def stored(key: keys.NewKey, **changes: Any) -> store.StoredKey:
    values: dict[str, Any] = {
        "key_id": key.key_id, "tenant": "tenant-a", "principal": "officer-li", "roles": frozenset({"compliance"}),
        "secret_sha256": key.secret_hash, "created_at": NOW, "created_by": "cli", "expires_at": None,
        "revoked_at": None, "revoked_by": None, "revoke_reason": None, "replaced_by": None}
    return store.StoredKey(**(values | changes))


class FakeStore:
    """Stands in for the database: rows by key id, a switch to make it unreachable, a count of reads."""

    def __init__(self) -> None:
        self.rows: dict[str, store.StoredKey] = {}
        self.down = False
        self.reads = 0

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[FakeStore]:
        if self.down:
            raise OSError("connection refused")
        yield self

    async def get(self, conn: Any, key_id: str) -> store.StoredKey | None:
        self.reads += 1
        return self.rows.get(key_id)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeStore:
    db = FakeStore()
    monkeypatch.setattr(store, "get", db.get)
    return db


def verifier(db: FakeStore, clock: list[float], ttl_s: float = 5.0) -> KeyVerifier:
    return KeyVerifier(db, static_keys={"dev-key-tenant-a": "tenant-a"}, ttl_s=ttl_s,  # type: ignore[arg-type]
                       clock=lambda: clock[0], now=lambda: NOW)


async def test_a_key_is_read_once_per_ttl_and_a_revocation_counts_after_it(fake: FakeStore) -> None:
    key, clock = mint(), [100.0]
    fake.rows[key.key_id] = stored(key)
    check = verifier(fake, clock)
    principal = await check.verify(key.text)
    assert principal == Principal("tenant-a", "officer-li", frozenset({"compliance"}), key.key_id)
    assert await check.verify(key.text) == principal and fake.reads == 1        # cached
    fake.rows[key.key_id] = stored(key, revoked_at=NOW - timedelta(seconds=1))
    clock[0] += 4.9
    assert await check.verify(key.text) == principal                              # still within the TTL
    clock[0] += 0.2
    assert await check.verify(key.text) is None and fake.reads == 2              # read again: revoked


async def test_wrong_secret_unknown_and_expired_keys_are_refused(fake: FakeStore) -> None:
    key, other, clock = mint(), mint(), [0.0]
    fake.rows[key.key_id] = stored(key, expires_at=NOW + timedelta(seconds=1))
    check = verifier(fake, clock)
    assert await check.verify(f"gck_{key.key_id}_{other.secret}") is None
    assert await check.verify(other.text) is None
    assert await check.verify(key.text) is not None
    fake.rows[key.key_id] = stored(key, expires_at=NOW)
    assert await check.verify(key.text) is not None  # the cached row: expiry is checked against the row read
    check.forget()
    assert await check.verify(key.text) is None
    assert await check.verify("") is None and await check.verify("nope") is None


async def test_static_keys_have_every_role_and_need_no_database(fake: FakeStore) -> None:
    fake.down = True
    check = verifier(fake, [0.0])
    assert await check.verify("dev-key-tenant-a") == keys.static_principal("tenant-a")
    assert await check.verify("dev-key-tenant-b") is None


async def test_an_outage_fails_no_key_read_within_the_ttl_and_is_an_error_after_it(fake: FakeStore) -> None:
    key, clock = mint(), [0.0]
    fake.rows[key.key_id] = stored(key)
    check = verifier(fake, clock)
    assert await check.verify(key.text) is not None
    fake.down = True
    clock[0] += 3
    assert await check.verify(key.text) is not None
    with pytest.raises(KeyStoreUnavailable):
        await check.verify(mint().text)   # never read: cannot be checked
    clock[0] += 3
    with pytest.raises(KeyStoreUnavailable):
        await check.verify(key.text)      # the TTL is over: cannot be checked either


async def test_ttl_zero_reads_every_time(fake: FakeStore) -> None:
    key = mint()
    fake.rows[key.key_id] = stored(key)
    check = verifier(fake, [0.0], ttl_s=0)
    for _ in range(3):
        assert await check.verify(key.text) is not None
    assert fake.reads == 3

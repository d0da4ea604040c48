"""API keys of principals (docs/access.md): ``python -m shared.tools.keys issue|rotate|revoke|list``.

    issue  --tenant T --principal P --roles r1,r2 [--expires 90d | 2027-01-01T00:00:00Z]
           prints the key once, on stdout (only its SHA-256 is stored: it cannot be shown again)
    rotate --key-id K [--grace 24h] [--expires ...]
           a new key for the same principal and roles; the old one keeps working for the grace period
           (default API_KEY_ROTATION_GRACE, else 24h; 0 ends it now), then expires
    revoke --key-id K --reason WHY
           services refuse the key within API_KEY_CACHE_TTL_S (5 s by default)
    list   [--tenant T] [--principal P]
           keys and their status; never a secret

Roles: partner, agent, supervisor, compliance, admin. ``--by`` names who runs the command (default
``cli:<os user>``); it is stored with each key issued, rotated or revoked. ``--database-url`` (default
``DATABASE_URL``) is the services' database: the keys live in its ``access`` schema
(``python -m shared.tools.migrate`` creates it).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TextIO

from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from shared.access import store
from shared.access.keys import PRINCIPAL_NAME, parse_roles
from shared.db import asyncpg_url
from shared.settings import EMBEDDED_DATABASE_URL

DEFAULT_GRACE = "24h"
_DURATION = re.compile(r"^(?P<n>\d+)(?P<unit>[smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def duration(text: str) -> timedelta:
    """``90d``, ``24h``, ``30m``, ``0s`` (or a bare number of seconds) as a timedelta."""
    text = text.strip()
    if text.isdigit():
        return timedelta(seconds=int(text))
    match = _DURATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r}: give a duration such as 90d, 24h, 30m or 0s")
    return timedelta(**{_UNITS[match["unit"]]: int(match["n"])})


def instant_or_duration(text: str) -> datetime | timedelta:
    """An ISO 8601 instant with its offset, or a duration from now (``90d``)."""
    try:
        return duration(text)
    except argparse.ArgumentTypeError:
        pass
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give 90d, 12h ... or an instant such as "
                                         "2027-01-01T00:00:00Z") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r}: give the instant's offset (Z or +08:00)")
    return value.astimezone(UTC)


def _expiry(value: datetime | timedelta | None, now: datetime) -> datetime | None:
    if value is None:
        return None
    return now + value if isinstance(value, timedelta) else value


def _principal(text: str) -> str:
    if not PRINCIPAL_NAME.match(text):
        raise argparse.ArgumentTypeError(f"{text!r}: a principal is 1-100 letters, digits and . _ @ - "
                                         "(no colon), starting with a letter or digit")
    return text


def _roles(text: str) -> frozenset[str]:
    try:
        return parse_roles(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _operator() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in some containers
        return "cli"


def parser() -> argparse.ArgumentParser:
    """The command line."""
    root = argparse.ArgumentParser(prog="python -m shared.tools.keys", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    root.add_argument("--database-url", default=os.environ.get("DATABASE_URL", EMBEDDED_DATABASE_URL))
    root.add_argument("--by", default=None, help="who runs this (stored with the key); default cli:<os user>")
    commands = root.add_subparsers(dest="command", required=True)
    issue = commands.add_parser("issue", help="a new key for a principal; printed once")
    issue.add_argument("--tenant", required=True)
    issue.add_argument("--principal", required=True, type=_principal)
    issue.add_argument("--roles", required=True, type=_roles, help="comma-separated: partner,agent,supervisor,"
                                                                   "compliance,admin")
    issue.add_argument("--expires", type=instant_or_duration, default=None, help="90d, or an ISO instant")
    rotate = commands.add_parser("rotate", help="a new key for the same principal; the old one ends after --grace")
    rotate.add_argument("--key-id", required=True)
    rotate.add_argument("--grace", type=duration,
                        default=duration(os.environ.get("API_KEY_ROTATION_GRACE", DEFAULT_GRACE)))
    rotate.add_argument("--expires", type=instant_or_duration, default=None,
                        help="the new key's expiry (default: the old key's)")
    revoke = commands.add_parser("revoke", help="refuse a key from now on (within API_KEY_CACHE_TTL_S)")
    revoke.add_argument("--key-id", required=True)
    revoke.add_argument("--reason", required=True)
    listing = commands.add_parser("list", help="keys and their status (never a secret)")
    listing.add_argument("--tenant")
    listing.add_argument("--principal")
    return root


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else "-"


async def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run one parsed command against the database; the exit status."""
    engine = create_async_engine(asyncpg_url(args.database_url), poolclass=NullPool)
    by = args.by or _operator()
    now = datetime.now(UTC)
    try:
        async with engine.begin() as conn:
            if args.command == "issue":
                key, stored = await store.issue(conn, tenant=args.tenant, principal=args.principal, roles=args.roles,
                                                created_by=by, now=now, expires_at=_expiry(args.expires, now))
                out.write(key.text + "\n")
                err.write(f"issued {stored.key_id} for {stored.principal} of {stored.tenant} "
                          f"({','.join(sorted(stored.roles))}), expires {_when(stored.expires_at)}; "
                          "the key above is shown only this once\n")
            elif args.command == "rotate":
                key, stored = await store.rotate(conn, key_id=args.key_id, grace=args.grace, created_by=by, now=now,
                                                 expires_at=_expiry(args.expires, now))
                out.write(key.text + "\n")
                err.write(f"issued {stored.key_id} for {stored.principal} of {stored.tenant}; {args.key_id} keeps "
                          f"working until {_when(now + args.grace)}; the key above is shown only this once\n")
            elif args.command == "revoke":
                stored = await store.revoke(conn, key_id=args.key_id, revoked_by=by, reason=args.reason, now=now)
                out.write(f"revoked {stored.key_id} ({stored.principal} of {stored.tenant}) at "
                          f"{_when(stored.revoked_at)}\n")
            else:
                rows = await store.listing(conn, tenant=args.tenant, principal=args.principal)
                out.write("key_id            tenant  principal  roles  status  created  expires  revoked  "
                          "replaced_by\n")
                for k in rows:
                    out.write(f"{k.key_id}  {k.tenant}  {k.principal}  {','.join(sorted(k.roles))}  "
                              f"{k.status(now)}  {_when(k.created_at)}  {_when(k.expires_at)}  "
                              f"{_when(k.revoked_at)}  {k.replaced_by or '-'}\n")
    except store.UnknownKey as exc:
        err.write(f"no key {exc.args[0]}\n")
        return 1
    except ValueError as exc:
        err.write(f"{exc}\n")
        return 1
    finally:
        await engine.dispose()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    args = parser().parse_args(argv)
    return asyncio.run(run(args, sys.stdout, sys.stderr))


if __name__ == "__main__":
    sys.exit(main())

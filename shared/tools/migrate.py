"""Apply the Alembic migrations of the shared ``access`` schema (API keys, read by every service) and of every
service's schema: ``python -m shared.tools.migrate [--service NAME]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from alembic import command
from alembic.config import Config

from shared.registry import NAMES as SERVICES
from shared.registry import spec
from shared.settings import EMBEDDED_DATABASE_URL

ROOT = Path(__file__).resolve().parents[2]
ACCESS = "access"  # shared/access/migrations: the API keys every service reads (docs/access.md)
SCHEMAS: tuple[str, ...] = (ACCESS, *SERVICES)


def alembic_config(service: str, database_url: str) -> Config:
    """An Alembic config for one service (or the shared ``access`` schema), without an alembic.ini file."""
    if service == ACCESS:
        location = ROOT / "shared" / "access" / "migrations"
    else:
        spec(service)  # a clear error for an unknown name
        location = ROOT / "services" / service / "migrations"
    cfg = Config()
    cfg.set_main_option("script_location", str(location))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, services: tuple[str, ...] = SCHEMAS) -> None:
    """Migrate each schema (``access`` first, then the services') to head. Idempotent. Call from sync code (or a
    thread)."""
    for service in services:
        command.upgrade(alembic_config(service, database_url), "head")


def main() -> None:
    """Command line entry point."""
    import os

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--service", choices=SCHEMAS, action="append")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", EMBEDDED_DATABASE_URL))
    args = parser.parse_args()
    upgrade(args.database_url, tuple(args.service or SCHEMAS))


if __name__ == "__main__":
    main()

"""Apply every service's Alembic migrations: ``python -m shared.tools.migrate [--service NAME]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from alembic import command
from alembic.config import Config

from shared.registry import NAMES as SERVICES
from shared.registry import spec
from shared.settings import EMBEDDED_DATABASE_URL

ROOT = Path(__file__).resolve().parents[2]


def alembic_config(service: str, database_url: str) -> Config:
    """An Alembic config for one service, without an alembic.ini file."""
    spec(service)  # a clear error for an unknown name
    cfg = Config()
    cfg.set_main_option("script_location", str(ROOT / "services" / service / "migrations"))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, services: tuple[str, ...] = SERVICES) -> None:
    """Migrate each service's schema to head. Idempotent. Call from sync code (or a thread)."""
    for service in services:
        command.upgrade(alembic_config(service, database_url), "head")


def main() -> None:
    """Command line entry point."""
    import os

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--service", choices=SERVICES, action="append")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", EMBEDDED_DATABASE_URL))
    args = parser.parse_args()
    upgrade(args.database_url, tuple(args.service or SERVICES))


if __name__ == "__main__":
    main()

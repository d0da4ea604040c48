from shared.access.store import SCHEMA
from shared.alembic_env import run_migrations

run_migrations(SCHEMA)

from shared.alembic_env import run_migrations
from shared.registry import spec

run_migrations(spec("compliance").schema)

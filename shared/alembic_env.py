"""The body of every service's Alembic env.py: async, schema-per-service, version table inside it."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from shared.db import asyncpg_url


def run_migrations(schema: str) -> None:
    """Apply this service's migrations inside ``schema`` (created if missing)."""
    url = asyncpg_url(context.config.get_main_option("sqlalchemy.url") or "")
    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True, version_table_schema=schema)
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_online(url, schema))


async def _online(url: str, schema: str) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            await conn.execute(sa.text(f'SET search_path TO "{schema}"'))
            await conn.commit()
            await conn.run_sync(_apply, schema)
            await conn.commit()
    finally:
        await engine.dispose()


def _apply(connection: sa.Connection, schema: str) -> None:
    context.configure(connection=connection, version_table_schema=schema, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


def create_messaging_tables() -> None:
    """Inbox and outbox DDL (shared/messaging.py), used by each service's first migration."""
    op.create_table(
        "inbox",
        sa.Column("consumer_group", sa.String(100), primary_key=True),
        sa.Column("event_id", sa.String(200), primary_key=True),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("key", sa.LargeBinary, nullable=False),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )


def create_audit_table() -> None:
    """The ``audit_log`` DDL (shared/audit.py), for the migration of a service that keeps it."""
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("principal", sa.String, nullable=False),
        sa.Column("key_id", sa.String, nullable=True),
        sa.Column("action", sa.String, nullable=False),
        sa.Column("subject", sa.String, nullable=False),
        sa.Column("reason", sa.String, nullable=False),
        sa.Column("request_id", sa.String, nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_audit_log_subject", "audit_log", ["tenant", "subject", "at"])
    op.create_index("ix_audit_log_principal", "audit_log", ["tenant", "principal", "at"])

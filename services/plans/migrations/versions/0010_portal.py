"""plans: customer portal links, second factors and requests

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _at(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "portal_links",
        sa.Column("nonce", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        _at("expires_at"),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        _at("used_at", nullable=True),
    )
    op.create_table(
        "portal_sessions",
        sa.Column("session_key", sa.String(64), primary_key=True),
        sa.Column("nonce", sa.String(32), nullable=False, unique=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("locale", sa.String(8), nullable=True),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        _at("locked_until", nullable=True),
        _at("verified_at", nullable=True),
        _at("created_at"),
        _at("last_seen_at"),
    )
    op.create_table(
        "portal_attempts",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("client_key", sa.String(64), nullable=False),
        sa.Column("session_key", sa.String(64), nullable=True),
        sa.Column("ok", sa.Boolean, nullable=False),
        _at("at"),
    )
    op.create_index("ix_portal_attempts_client", "portal_attempts", ["kind", "client_key", "at"])
    op.create_index("ix_portal_attempts_session", "portal_attempts", ["session_key", "at"])
    op.create_index("ix_portal_sessions_account", "portal_sessions", ["tenant", "account_id"])
    op.create_table(
        "portal_requests",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(16), nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("session_key", sa.String(64), nullable=False),
        _at("created_at"),
    )
    op.create_index("ix_portal_requests_account", "portal_requests", ["tenant", "account_id"])


def downgrade() -> None:
    op.drop_table("portal_requests")
    op.drop_table("portal_attempts")
    op.drop_table("portal_sessions")
    op.drop_table("portal_links")

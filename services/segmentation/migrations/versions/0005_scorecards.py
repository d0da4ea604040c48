"""segmentation: the scorecard registry (each tenant's repayment-propensity scorecards and their promotions), and
the score of each snapshot on the account and in its segment history

``scorecards`` keeps every version a tenant registered, immutable: the document as trained
(``python -m services.segmentation.training``), the features worth points, the held-out metrics (AUC, KS, Gini,
calibration) and who registered it why. ``scorecard_promotions`` records who made which version live, why and
when; the newest promotion is the tenant's live scorecard; a tenant with none scores by the shipped default
(services/segmentation/scorecards/default.json). docs/scoring.md.

``accounts`` and ``segment_history`` gain the score (scorecard version, points, probability NUMERIC(5,4), reasons
as [{"code", "text"}]); rows from before this migration have none (NULL) until their next snapshot.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_SCORE = ("scorecard_version", "score_points", "score_probability", "score_reasons")


def _score_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [sa.Column("scorecard_version", sa.String(64), nullable=True),
            sa.Column("score_points", sa.Integer, nullable=True),
            sa.Column("score_probability", sa.Numeric(5, 4), nullable=True),
            sa.Column("score_reasons", sa.JSON, nullable=True)]


def upgrade() -> None:
    op.create_table(
        "scorecards",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("version", sa.String(64), primary_key=True),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("features", sa.JSON, nullable=False),
        sa.Column("auc", sa.Float, nullable=True),
        sa.Column("ks", sa.Float, nullable=True),
        sa.Column("gini", sa.Float, nullable=True),
        sa.Column("calibration", sa.JSON, nullable=True),
        sa.Column("registered_by", sa.String, nullable=False),
        sa.Column("reason", sa.String, nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_table(
        "scorecard_promotions",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("promoted_by", sa.String, nullable=False),
        sa.Column("reason", sa.String, nullable=False),
        sa.Column("promoted_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(["tenant", "version"], ["scorecards.tenant", "scorecards.version"]),
    )
    op.create_index("ix_scorecard_promotions_tenant", "scorecard_promotions", ["tenant", "id"])
    for table in ("accounts", "segment_history"):
        for column in _score_columns():
            op.add_column(table, column)


def downgrade() -> None:
    for table in ("segment_history", "accounts"):
        for name in reversed(_SCORE):
            op.drop_column(table, name)
    op.drop_index("ix_scorecard_promotions_tenant", table_name="scorecard_promotions")
    op.drop_table("scorecard_promotions")
    op.drop_table("scorecards")

"""Executions, analytics, logs and the summary view.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from miyabi_analytics._db.adopt import is_adopted
from miyabi_analytics._db.summary import Shape, Tie, drop_view_ddl, view_ddl
from miyabi_analytics._db.types import JsonDocument, UtcDateTime, UuidText
from miyabi_analytics.errors import SchemaError

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The view as the summary defines it, with this revision's tie-break between analytics rows of
# one created_at (the larger id; 0007_write_order makes it the write order) and its columns.
def _view_sql() -> str:
    return view_ddl(op.get_bind().dialect, tie=Tie.ID, shape=Shape.ORIGINAL)


def upgrade() -> None:
    op.create_table(
        "agent_executions",
        sa.Column("id", UuidText(), nullable=False),
        sa.Column("repository_id", UuidText(), nullable=False),
        sa.Column("user_id", UuidText(), nullable=True),
        sa.Column("agent_type", sa.String(50), nullable=False),
        sa.Column("issue_number", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=True),
        sa.Column("completed_at", UtcDateTime(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("result", JsonDocument, nullable=True),
        sa.Column("quality_score", sa.Integer(), nullable=True),
        sa.Column("pr_number", sa.Integer(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_agent_executions"),
        sa.CheckConstraint(
            "quality_score IS NULL OR (quality_score >= 0 AND quality_score <= 100)",
            name="ck_agent_executions_quality_score_range",
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'completed', 'failed')",
            name="ck_agent_executions_status_known",
        ),
    )
    for column in ("repository_id", "agent_type", "status", "created_at", "started_at"):
        op.create_index(f"ix_agent_executions_{column}", "agent_executions", [column])

    op.create_table(
        "business_agent_analytics",
        sa.Column("id", UuidText(), nullable=False),
        sa.Column("execution_id", UuidText(), nullable=False),
        sa.Column("agent_type", sa.String(50), nullable=False),
        sa.Column("metrics", JsonDocument, nullable=False),
        sa.Column("competitors_analyzed", sa.Integer(), nullable=True),
        sa.Column("market_size_usd", sa.BigInteger(), nullable=True),
        sa.Column("growth_rate_percent", sa.Numeric(5, 2, asdecimal=False), nullable=True),
        sa.Column("conversion_rate", sa.Numeric(5, 2, asdecimal=False), nullable=True),
        sa.Column("target_audience_size", sa.Integer(), nullable=True),
        sa.Column("estimated_revenue_usd", sa.BigInteger(), nullable=True),
        sa.Column("engagement_score", sa.Integer(), nullable=True),
        sa.Column("reach_estimate", sa.Integer(), nullable=True),
        sa.Column("roi_percent", sa.Numeric(7, 2, asdecimal=False), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_business_agent_analytics"),
        sa.ForeignKeyConstraint(
            ["execution_id"], ["agent_executions.id"], ondelete="CASCADE",
            name="fk_business_agent_analytics_execution_id_agent_executions",
        ),
        sa.CheckConstraint(
            "engagement_score IS NULL OR (engagement_score >= 0 AND engagement_score <= 100)",
            name="ck_business_agent_analytics_engagement_score_range",
        ),
    )
    for column in ("execution_id", "agent_type"):
        op.create_index(
            f"ix_business_agent_analytics_{column}", "business_agent_analytics", [column]
        )

    op.create_table(
        "agent_execution_logs",
        sa.Column("id", UuidText(), nullable=False),
        sa.Column("execution_id", UuidText(), nullable=False),
        sa.Column("log_level", sa.String(20), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("metadata", JsonDocument, nullable=True),
        sa.Column("logged_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_agent_execution_logs"),
        sa.ForeignKeyConstraint(
            ["execution_id"], ["agent_executions.id"], ondelete="CASCADE",
            name="fk_agent_execution_logs_execution_id_agent_executions",
        ),
    )
    for column in ("execution_id", "log_level", "logged_at"):
        op.create_index(f"ix_agent_execution_logs_{column}", "agent_execution_logs", [column])

    op.execute(_view_sql())


def downgrade() -> None:
    if is_adopted(op.get_bind()):
        # These tables were upstream Miyabi's before they were ours: dropping them would lose
        # upstream's data. `downgrade --revision upstream` gives the database back instead.
        raise SchemaError(
            "refusing to downgrade below 0001_initial: this database was adopted from upstream "
            "Miyabi and its tables hold upstream's data; downgrade to 'upstream' instead"
        )
    op.execute(drop_view_ddl())
    op.drop_table("agent_execution_logs")
    op.drop_table("business_agent_analytics")
    op.drop_table("agent_executions")

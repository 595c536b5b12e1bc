"""Executions, analytics, logs and the summary view.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.types import JsonDocument, UtcDateTime, UuidText

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here on purpose: a later agent list gets a later revision that recreates the view.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "strategy": (
        "AIEntrepreneurAgent", "SelfAnalysisAgent", "PersonaAgent",
        "ProductConceptAgent", "ProductDesignAgent", "FunnelDesignAgent",
    ),
    "marketing": (
        "MarketResearchAgent", "ContentCreationAgent", "SNSStrategyAgent",
        "MarketingAgent", "YouTubeAgent",
    ),
    "operations": ("SalesAgent", "CRMAgent", "AnalyticsAgent"),
    "design": ("JonathanIveDesignAgent",),
}

TYPED_METRICS = (
    "competitors_analyzed", "market_size_usd", "growth_rate_percent", "conversion_rate",
    "target_audience_size", "estimated_revenue_usd", "engagement_score", "reach_estimate",
    "roi_percent",
)

EXECUTION_COLUMNS = (
    "id", "repository_id", "user_id", "agent_type", "issue_number", "status", "started_at",
    "completed_at", "error_message", "result", "quality_score", "pr_number", "created_at",
    "updated_at",
)


def _category_case() -> str:
    whens = " ".join(
        f"WHEN '{agent}' THEN '{category}'"
        for category, agents in CATEGORIES.items()
        for agent in agents
    )
    return f"CASE e.agent_type {whens} END"


def _view_sql(dialect: str) -> str:
    execution_cols = ", ".join(f"e.{c}" for c in EXECUTION_COLUMNS)
    metric_cols = ", ".join(f"a.{c}" for c in TYPED_METRICS)
    if dialect == Dialect.POSTGRESQL:
        duration = "EXTRACT(EPOCH FROM (e.completed_at - e.started_at))::double precision"
    else:
        # Whole seconds from strftime('%s') on the first 19 characters plus the microsecond digits
        # as integers: exact, where julianday() would round to milliseconds.
        def micros(col: str) -> str:
            return (
                f"(CAST(strftime('%s', substr({col}, 1, 19)) AS INTEGER) * 1000000 "
                f"+ CAST(substr({col}, 21, 6) AS INTEGER))"
            )

        duration = (
            f"({micros('e.completed_at')} - {micros('e.started_at')}) / 1000000.0"
        )
    # The latest analytics row of each execution as an anti-join ("no later row exists"): set
    # based, so a full read is two hash joins, and a filtered one still uses the indexes.
    latest = (
        "LEFT JOIN business_agent_analytics a ON a.execution_id = e.id AND NOT EXISTS ("
        "SELECT 1 FROM business_agent_analytics b WHERE b.execution_id = a.execution_id "
        "AND (b.created_at > a.created_at OR (b.created_at = a.created_at AND b.id > a.id)))"
    )
    # DDL from this file's constants only; no value from outside reaches it.
    return (
        "CREATE VIEW v_business_agent_summary AS SELECT "  # noqa: S608
        f"{execution_cols}, "
        f"CASE WHEN e.started_at IS NULL OR e.completed_at IS NULL THEN NULL "
        f"ELSE {duration} END AS duration_seconds, "
        f"{_category_case()} AS agent_category, "
        f"{metric_cols} "
        f"FROM agent_executions e {latest}"
    )


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

    op.execute(_view_sql(op.get_bind().dialect.name))


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS v_business_agent_summary")
    op.drop_table("agent_execution_logs")
    op.drop_table("business_agent_analytics")
    op.drop_table("agent_executions")

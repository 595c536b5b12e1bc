"""Tenant isolation: row-level security keyed to the repository (PostgreSQL; SQLite: no-op).

Every table gets one policy, forced on the table owner too: a row is visible and writable when
the session setting ``miyabi.repository_ids`` (comma-separated uuids, set per transaction by
``connect(url, repository_ids=[...])``) is unset or empty, or lists its repository; analytics and
log rows go by their execution's repository. The summary view is recreated with
``security_invoker``, so it reads the tables with the caller's policies rather than its owner's
(an owner that is a superuser would bypass them). ``CREATE OR REPLACE`` keeps its grants and any
view built on it.

Revision ID: 0003_row_level_security
Revises: 0002_report_runs
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from miyabi_analytics._db.dialect import Dialect

revision: str = "0003_row_level_security"
down_revision: str | None = "0002_report_runs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POLICY = "miyabi_repository_scope"

_SETTING = "current_setting('miyabi.repository_ids', true)"
_UNSCOPED = f"coalesce({_SETTING}, '') = ''"
_SCOPE = f"string_to_array({_SETTING}, ',')::uuid[]"

# The execution ids in scope; policies are DDL from this file's constants only.
_SCOPED_EXECUTIONS = f"SELECT e.id FROM agent_executions e WHERE e.repository_id = ANY ({_SCOPE})"  # noqa: S608

# table -> the rows a scoped session may see and write. Children go through a hashed subplan
# (the scope's execution ids, computed once per query) rather than a lookup per row.
POLICIES: dict[str, str] = {
    "agent_executions": f"{_UNSCOPED} OR repository_id = ANY ({_SCOPE})",
    "business_agent_analytics": f"{_UNSCOPED} OR execution_id IN ({_SCOPED_EXECUTIONS})",
    "agent_execution_logs": f"{_UNSCOPED} OR execution_id IN ({_SCOPED_EXECUTIONS})",
}

# -- the summary view, frozen as 0001_initial defines it ------------------------------------

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


def _pg_view_sql(*, security_invoker: bool) -> str:
    """0001_initial's PostgreSQL view, as ``CREATE OR REPLACE`` with or without the option.

    Without it, ``CREATE OR REPLACE`` also clears the option (PostgreSQL replaces the options).
    """
    execution_cols = ", ".join(f"e.{c}" for c in EXECUTION_COLUMNS)
    metric_cols = ", ".join(f"a.{c}" for c in TYPED_METRICS)
    duration = "EXTRACT(EPOCH FROM (e.completed_at - e.started_at))::double precision"
    latest = (
        "LEFT JOIN business_agent_analytics a ON a.execution_id = e.id AND NOT EXISTS ("
        "SELECT 1 FROM business_agent_analytics b WHERE b.execution_id = a.execution_id "
        "AND (b.created_at > a.created_at OR (b.created_at = a.created_at AND b.id > a.id)))"
    )
    options = " WITH (security_invoker = true)" if security_invoker else ""
    # DDL from this file's constants only; no value from outside reaches it.
    return (
        f"CREATE OR REPLACE VIEW v_business_agent_summary{options} AS SELECT "  # noqa: S608
        f"{execution_cols}, "
        f"CASE WHEN e.started_at IS NULL OR e.completed_at IS NULL THEN NULL "
        f"ELSE {duration} END AS duration_seconds, "
        f"{_category_case()} AS agent_category, "
        f"{metric_cols} "
        f"FROM agent_executions e {latest}"
    )


def _is_postgresql() -> bool:
    return Dialect.of(op.get_bind()).is_postgresql


def upgrade() -> None:
    if not _is_postgresql():
        return  # SQLite has no row-level security; connect() refuses repository_ids there
    bind = op.get_bind()
    version = bind.dialect.server_version_info or (0,)
    if version < (15,):
        # Without security_invoker the view would read the tables as its owner, and an owner
        # that bypasses row-level security would show every tenant's rows to everyone.
        raise RuntimeError(
            "row-level security needs PostgreSQL 15 or newer (views with security_invoker); "
            f"this server is {'.'.join(map(str, version))}"
        )
    for table, condition in POLICIES.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {POLICY} ON {table} FOR ALL "
            f"USING ({condition}) WITH CHECK ({condition})"
        )
    op.execute(_pg_view_sql(security_invoker=True))


def downgrade() -> None:
    if not _is_postgresql():
        return
    op.execute(_pg_view_sql(security_invoker=False))
    for table in reversed(list(POLICIES)):
        op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")

"""Statistics on the UTC day, week and month of ``started_at``, for bucketed aggregates.

Without them PostgreSQL guesses that grouping 1M executions by ``date_trunc(...)`` makes
hundreds of thousands of groups (there are a few thousand), so it sorts every row on disk
instead of hashing: ``success_rates(freq="D")`` took 1.0 s, 0.4 s with these statistics;
``business_metrics(freq="M")`` 1.7 s, 1.2 s (1M executions). The expressions are exactly the
ones :class:`~miyabi_analytics._db.buckets.UtcBucket` compiles to, which is how the planner
finds them. ``ANALYZE`` fills them at once. SQLite: nothing to do.

Revision ID: 0006_bucket_statistics
Revises: 0005_report_runs_scope
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from miyabi_analytics._db.dialect import Dialect

revision: str = "0006_bucket_statistics"
down_revision: str | None = "0005_report_runs_scope"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNITS = ("day", "week", "month")


def _is_postgresql() -> bool:
    return Dialect.of(op.get_bind()).is_postgresql


def upgrade() -> None:
    if not _is_postgresql():
        return
    for unit in UNITS:
        # DDL from this file's constants only.
        op.execute(
            f"CREATE STATISTICS agent_executions_started_{unit} "
            f"ON (date_trunc('{unit}', started_at, 'UTC')) FROM agent_executions"
        )
    op.execute("ANALYZE agent_executions")


def downgrade() -> None:
    if not _is_postgresql():
        return
    for unit in UNITS:
        op.execute(f"DROP STATISTICS IF EXISTS agent_executions_started_{unit}")

"""The database's own rules: defaults, the lifecycle guard, timestamp stamps, ``updated_at``.

Until now the guarantees lived in the Python store only; a plain SQL writer (the Rust agents
that share a Miyabi database, psql) hit NOT NULL for the ids and timestamps it does not send,
and could move a completed execution back to running. Now the database holds them for every
writer (:mod:`miyabi_analytics._db.rules` describes each rule):

- defaults: ids (``gen_random_uuid()`` / a uuid4 text on SQLite), ``created_at``/``updated_at``/
  ``logged_at`` now, ``metrics`` ``{}``;
- triggers on ``agent_executions``: an illegal status move is refused (SQLSTATE ``23M01`` on
  PostgreSQL, ``RAISE(ABORT, 'illegal status transition: ...')`` on SQLite); entering running /
  completed / failed stamps a missing ``started_at`` / ``completed_at``; an UPDATE that changes
  the record but not ``updated_at`` gets ``updated_at`` now.

PostgreSQL sets the defaults in the catalog (no rewrite). SQLite cannot change a column's
default in place: the three tables are rebuilt with alembic's batch mode, in rowid order (the
write order of revision 0007 survives), the view dropped around the rebuilds as in 0007.

Frozen here on purpose: this file spells out the tables it rebuilds and the columns the
``updated_at`` rule compares. The legal moves come from the vocabulary's lifecycle.

Revision ID: 0008_database_rules
Revises: 0007_write_order
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.rules import DEFAULTS, create_rules_ddl, drop_rules_ddl
from miyabi_analytics._db.summary import Shape, Tie, drop_view_ddl, view_ddl

revision: str = "0008_database_rules"
down_revision: str | None = "0007_write_order"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The columns of the record as rule 3 (updated_at) compares them: every column of
# agent_executions at this revision but updated_at and last_heartbeat_at.
RECORD_COLUMNS = (
    "id", "repository_id", "user_id", "agent_type", "issue_number", "status", "started_at",
    "completed_at", "error_message", "result", "quality_score", "pr_number", "created_at",
)

# -- SQLite: the tables as they stand at 0007, with or without the defaults --------------------

_UUID = sa.String(36)  # uuids and timestamps are fixed-width text on SQLite
_TIME = sa.String(32)


def _col(table: str, name: str, kind: Any, *, null: bool, defaults: bool) -> sa.Column[Any]:
    default = None
    if defaults:
        found = [d for d in DEFAULTS if d.table == table and d.column == name]
        if found:
            default = sa.text(found[0].sql(Dialect.SQLITE))
    return sa.Column(name, kind, nullable=null, server_default=default)


def _frozen_tables(*, defaults: bool) -> list[sa.Table]:
    meta = sa.MetaData()  # no naming convention: every name below is final

    def col(table: str, name: str, kind: Any, null: bool = True) -> sa.Column[Any]:
        return _col(table, name, kind, null=null, defaults=defaults)

    ex = "agent_executions"
    executions = sa.Table(
        ex, meta,
        col(ex, "id", _UUID, False), col(ex, "repository_id", _UUID, False),
        col(ex, "user_id", _UUID), col(ex, "agent_type", sa.String(50), False),
        col(ex, "issue_number", sa.Integer()), col(ex, "status", sa.String(20), False),
        col(ex, "started_at", _TIME), col(ex, "completed_at", _TIME),
        col(ex, "error_message", sa.Text()), col(ex, "result", sa.JSON()),
        col(ex, "quality_score", sa.Integer()), col(ex, "pr_number", sa.Integer()),
        col(ex, "created_at", _TIME, False), col(ex, "updated_at", _TIME, False),
        col(ex, "last_heartbeat_at", _TIME),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_executions")),
        sa.CheckConstraint(
            "quality_score IS NULL OR (quality_score >= 0 AND quality_score <= 100)",
            name=op.f("ck_agent_executions_quality_score_range"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'completed', 'failed')",
            name=op.f("ck_agent_executions_status_known"),
        ),
    )
    for column in ("repository_id", "agent_type", "status", "created_at", "started_at"):
        sa.Index(op.f(f"ix_agent_executions_{column}"), executions.c[column])

    an = "business_agent_analytics"
    analytics = sa.Table(
        an, meta,
        col(an, "id", _UUID, False), col(an, "execution_id", _UUID, False),
        col(an, "agent_type", sa.String(50), False), col(an, "metrics", sa.JSON(), False),
        col(an, "competitors_analyzed", sa.Integer()),
        col(an, "market_size_usd", sa.BigInteger()),
        col(an, "growth_rate_percent", sa.Numeric(5, 2)),
        col(an, "conversion_rate", sa.Numeric(5, 2)),
        col(an, "target_audience_size", sa.Integer()),
        col(an, "estimated_revenue_usd", sa.BigInteger()),
        col(an, "engagement_score", sa.Integer()), col(an, "reach_estimate", sa.Integer()),
        col(an, "roi_percent", sa.Numeric(7, 2)), col(an, "created_at", _TIME, False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_business_agent_analytics")),
        sa.ForeignKeyConstraint(
            ["execution_id"], ["agent_executions.id"], ondelete="CASCADE",
            name=op.f("fk_business_agent_analytics_execution_id_agent_executions"),
        ),
        sa.CheckConstraint(
            "engagement_score IS NULL OR (engagement_score >= 0 AND engagement_score <= 100)",
            name=op.f("ck_business_agent_analytics_engagement_score_range"),
        ),
    )
    for column in ("execution_id", "agent_type"):
        sa.Index(op.f(f"ix_business_agent_analytics_{column}"), analytics.c[column])

    lg = "agent_execution_logs"
    logs = sa.Table(
        lg, meta,
        col(lg, "id", _UUID, False), col(lg, "execution_id", _UUID, False),
        col(lg, "log_level", sa.String(20), False), col(lg, "message", sa.Text(), False),
        col(lg, "metadata", sa.JSON()), col(lg, "logged_at", _TIME, False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_execution_logs")),
        sa.ForeignKeyConstraint(
            ["execution_id"], ["agent_executions.id"], ondelete="CASCADE",
            name=op.f("fk_agent_execution_logs_execution_id_agent_executions"),
        ),
    )
    for column in ("execution_id", "log_level", "logged_at"):
        sa.Index(op.f(f"ix_agent_execution_logs_{column}"), logs.c[column])
    return [executions, analytics, logs]


def _sqlite_rebuild(*, defaults: bool) -> None:
    """Rebuild the three tables with (or without) the defaults; rows copied in rowid order."""
    op.execute(drop_view_ddl())  # SQLite refuses the renames while the view names a table
    for table in _frozen_tables(defaults=defaults):
        with op.batch_alter_table(table.name, recreate="always", copy_from=table):
            pass
    op.execute(view_ddl(op.get_bind().dialect, tie=Tie.WRITE_ORDER, shape=Shape.ORIGINAL))


# -- upgrade / downgrade -----------------------------------------------------------------------


def upgrade() -> None:
    dialect = Dialect.of(op.get_bind())
    if dialect.is_postgresql:
        for default in DEFAULTS:
            # DDL from the rules' constants only; a catalog change, no table rewrite.
            op.execute(
                f"ALTER TABLE {default.table} ALTER COLUMN {default.column} "
                f"SET DEFAULT {default.sql(dialect)}"
            )
    else:
        _sqlite_rebuild(defaults=True)  # drops nothing but the (re-created) view
    for statement in create_rules_ddl(dialect, RECORD_COLUMNS):
        op.execute(statement)


def downgrade() -> None:
    dialect = Dialect.of(op.get_bind())
    for statement in drop_rules_ddl(dialect):
        op.execute(statement)
    if dialect.is_postgresql:
        for default in DEFAULTS:
            op.execute(f"ALTER TABLE {default.table} ALTER COLUMN {default.column} DROP DEFAULT")
        return
    _sqlite_rebuild(defaults=False)

"""Rollups: per-day summaries for long-range aggregates, kept exact by marks the database makes.

``agent_execution_rollups`` (per UTC day of ``started_at``, agent type, repository, status and,
for failures, message: counts, sums, min/max of what the aggregates read),
``agent_execution_rollup_durations`` (the durations of each key as a logarithmic histogram) and
their sums per UTC month (``agent_execution_rollups_monthly``,
``agent_execution_rollup_durations_monthly``) are filled by ``refresh_rollups``. Triggers on
executions and analytics mark, for every writer, the
days a change touches in ``agent_execution_rollup_pending`` (:mod:`miyabi_analytics._db.rules.
rollup_marks`); readers take those days from the rows, so answers are exact whether the rollup
is fresh or not. ``agent_execution_rollup_state`` says when it was last refreshed.

Every day that already has executions is marked here: the rollup starts empty, and the first
``refresh_rollups`` (or ``miyabi-analytics rollup``) builds it. Row-level security scopes the
rollups by their repository, as 0003 scopes executions.

Also ``agent_execution_logs (execution_id, log_level)``: the view's error count per execution
is read from it alone, whatever the planner knows (an unanalysed SQLite database otherwise
chose the ``log_level`` index and read every error log per execution). On PostgreSQL the
``started_at`` index becomes covering (``INCLUDE`` what the aggregates read of a window's rows),
so a window costs an index-only scan of its own entries, wherever its rows lie in the heap.

Downgrade: drops the triggers, the logs index and the six tables; the started_at index is
plain again.

Revision ID: 0011_rollups
Revises: 0010_transitions
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.rules.rollup_marks import (
    backfill_marks_sql,
    create_marks_ddl,
    drop_marks_ddl,
)
from miyabi_analytics._db.rules.scoped import repository_scope_ddl
from miyabi_analytics._db.types import UtcDateTime, UuidText
from miyabi_analytics.vocabulary import AVERAGED_METRICS, SUMMED_METRICS

revision: str = "0011_rollups"
down_revision: str | None = "0010_transitions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLLUPS = "agent_execution_rollups"
DURATIONS = "agent_execution_rollup_durations"
MONTHLY = "agent_execution_rollups_monthly"
MONTHLY_DURATIONS = "agent_execution_rollup_durations_monthly"
PENDING = "agent_execution_rollup_pending"
STATE = "agent_execution_rollup_state"
STARTED = "ix_agent_executions_started_at"
WINDOW_COLUMNS = ("id", "completed_at", "agent_type", "repository_id", "status", "quality_score")


def _keys() -> list[sa.Column[object]]:
    return [
        sa.Column("day", UtcDateTime(), nullable=False),
        sa.Column("agent_type", sa.String(50), nullable=False),
        sa.Column("repository_id", UuidText(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
    ]


def _big(*names: str, nullable: bool = True) -> list[sa.Column[object]]:
    return [sa.Column(name, sa.BigInteger(), nullable=nullable) for name in names]


def upgrade() -> None:
    dialect = Dialect.of(op.get_bind())
    for table in (ROLLUPS, MONTHLY):
        op.create_table(
            table,
            *_keys(),
            sa.Column("error_message", sa.Text(), nullable=True),
            *_big("executions", "scored", "timed", "analysed", nullable=False),
            *_big("quality_sum", "quality_sq_sum"),
            sa.Column("quality_min", sa.Integer(), nullable=True),
            sa.Column("quality_max", sa.Integer(), nullable=True),
            *_big("micros_hi", "micros_lo", "micros_min", "micros_max"),
            sa.Column("started_min", UtcDateTime(), nullable=True),
            sa.Column("started_max", UtcDateTime(), nullable=True),
            *_big(*(f"{name}_{half}" for name in SUMMED_METRICS for half in ("hi", "lo"))),
            *_big(*(f"{name}_{p}" for name in AVERAGED_METRICS for p in ("total", "count"))),
        )
        op.create_index(op.f(f"ix_{table}_day"), table, ["day"])
    for table in (DURATIONS, MONTHLY_DURATIONS):
        op.create_table(
            table,
            *_keys(),
            sa.Column("bucket", sa.Integer(), nullable=False),
            sa.Column("count", sa.BigInteger(), nullable=False),
        )
        op.create_index(op.f(f"ix_{table}_day"), table, ["day"])
    op.create_table(
        PENDING,
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(),
            primary_key=True,
        ),
        sa.Column("day", UtcDateTime(), nullable=False),
        sa.Column("next_day", UtcDateTime(), nullable=False),
        sa.Column("month", UtcDateTime(), nullable=False),
        sa.Column("next_month", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{PENDING}")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f(f"ix_{PENDING}_day"), PENDING, ["day"])
    op.create_table(
        STATE,
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("refreshed_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint("id = 1", name=op.f(f"ck_{STATE}_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{STATE}")),
    )
    op.execute(f"INSERT INTO {STATE} (id, refreshed_at) VALUES (1, NULL)")  # noqa: S608
    op.create_index(
        op.f("ix_agent_execution_logs_execution_id_log_level"),
        "agent_execution_logs",
        ["execution_id", "log_level"],
    )
    if dialect.is_postgresql:  # a window read from the started_at index alone
        op.drop_index(op.f(STARTED), table_name="agent_executions")
        op.create_index(
            op.f(STARTED), "agent_executions", ["started_at"],
            postgresql_include=list(WINDOW_COLUMNS),
        )
        for table in (ROLLUPS, DURATIONS, MONTHLY, MONTHLY_DURATIONS):
            for statement in repository_scope_ddl(table):
                op.execute(statement)
    op.execute(backfill_marks_sql(dialect))
    for statement in create_marks_ddl(dialect, unstarted=False):
        op.execute(statement)


def downgrade() -> None:
    dialect = Dialect.of(op.get_bind())
    for statement in drop_marks_ddl(dialect):
        op.execute(statement)
    if dialect.is_postgresql:
        op.drop_index(op.f(STARTED), table_name="agent_executions")
        op.create_index(op.f(STARTED), "agent_executions", ["started_at"])
    op.drop_index(
        op.f("ix_agent_execution_logs_execution_id_log_level"), table_name="agent_execution_logs"
    )
    for table in (STATE, PENDING, MONTHLY_DURATIONS, MONTHLY, DURATIONS, ROLLUPS):
        op.drop_table(table)

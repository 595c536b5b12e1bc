"""Rollups keep never-started executions too, under the UTC day they were created.

Revision 0011 rolled up started executions only, so every all-time aggregate read the
never-started ones (pending forever, or failed before starting) from the table: a cost that grew
with the history. ``agent_execution_rollups`` and ``agent_execution_rollups_monthly`` gain
``started`` (false: the row sums executions that never started, keyed by their creation day),
and the marking triggers mark an execution's ``coalesce(started_at, created_at)`` day, with an
update of ``created_at`` marking as one of ``started_at`` does. The creation days of the
never-started executions stored now are marked, so the next refresh rolls them up.

Downgrade: removes the never-started rows from the rollups (0011's readers take those
executions from the table), the column, and puts 0011's triggers back.

Revision ID: 0012_unstarted_rollups
Revises: 0011_rollups
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

revision: str = "0012_unstarted_rollups"
down_revision: str | None = "0011_rollups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("agent_execution_rollups", "agent_execution_rollups_monthly")


def upgrade() -> None:
    dialect = Dialect.of(op.get_bind())
    for statement in drop_marks_ddl(dialect):
        op.execute(statement)
    for table in TABLES:
        op.add_column(
            table, sa.Column("started", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    op.execute(backfill_marks_sql(dialect, only_unstarted=True))
    for statement in create_marks_ddl(dialect, unstarted=True):
        op.execute(statement)


def downgrade() -> None:
    dialect = Dialect.of(op.get_bind())
    for statement in drop_marks_ddl(dialect):
        op.execute(statement)
    for table in TABLES:
        op.execute(f"DELETE FROM {table} WHERE NOT started")  # noqa: S608 (module constants)
        op.drop_column(table, "started")
    for statement in create_marks_ddl(dialect, unstarted=False):
        op.execute(statement)

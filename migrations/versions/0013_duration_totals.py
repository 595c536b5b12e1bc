"""The all-time duration histogram: one level above the months, so its size stays flat.

``duration_stats(exact=False)`` over all time summed every month's histogram (buckets times keys
rows per month: it grew with the history). ``agent_execution_rollup_durations_total`` holds
their sum per agent type, repository, status and bucket; ``refresh_rollups`` keeps it equal to
the sum of the months (it subtracts a month's old histogram and adds the new one, in the step
that recomputes the month), and an all-time read takes it, less the months that have a pending
day, plus those months' settled days and pending rows. Filled here from the months already
rolled up; scoped by repository as the other rollups are.

Downgrade: drops the table.

Revision ID: 0013_duration_totals
Revises: 0012_unstarted_rollups
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.rules.scoped import repository_scope_ddl
from miyabi_analytics._db.types import UuidText

revision: str = "0013_duration_totals"
down_revision: str | None = "0012_unstarted_rollups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TOTAL = "agent_execution_rollup_durations_total"
MONTHLY = "agent_execution_rollup_durations_monthly"
KEYS = "agent_type, repository_id, status, bucket"


def upgrade() -> None:
    op.create_table(
        TOTAL,
        sa.Column("agent_type", sa.String(50), nullable=False),
        sa.Column("repository_id", UuidText(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "agent_type", "repository_id", "status", "bucket", name=op.f(f"pk_{TOTAL}")
        ),
    )
    if Dialect.of(op.get_bind()).is_postgresql:
        for statement in repository_scope_ddl(TOTAL):
            op.execute(statement)
    op.execute(
        f"INSERT INTO {TOTAL} ({KEYS}, count) "  # noqa: S608 (module constants)
        f"SELECT {KEYS}, sum(count) FROM {MONTHLY} GROUP BY {KEYS}"
    )


def downgrade() -> None:
    op.drop_table(TOTAL)

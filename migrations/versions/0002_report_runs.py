"""Report runs: one row per generated report (parameters, data window, outcome).

Revision ID: 0002_report_runs
Revises: 0001_initial
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from miyabi_analytics._db.types import JsonDocument, UtcDateTime, UuidText

revision: str = "0002_report_runs"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "report_runs",
        sa.Column("id", UuidText(), nullable=False),
        sa.Column("parameters", JsonDocument, nullable=False),
        sa.Column("since", UtcDateTime(), nullable=False),
        sa.Column("until", UtcDateTime(), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("output_path", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_report_runs"),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'failed')",
            name="ck_report_runs_status_known",
        ),
    )
    op.create_index("ix_report_runs_started_at", "report_runs", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_report_runs_started_at", table_name="report_runs")
    op.drop_table("report_runs")

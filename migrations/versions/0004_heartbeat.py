"""Heartbeats: ``agent_executions.last_heartbeat_at``, the last sign of life of a running execution.

The summary view lists its columns by name, so it neither shows nor depends on the new column and
is left as it is. SQLite adds and drops the column in place (ALTER TABLE ... ADD / DROP COLUMN,
SQLite >= 3.35), no table rebuild, so the view and the foreign keys pointing here are untouched.

Revision ID: 0004_heartbeat
Revises: 0003_row_level_security
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from miyabi_analytics._db.types import UtcDateTime

revision: str = "0004_heartbeat"
down_revision: str | None = "0003_row_level_security"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "agent_executions", sa.Column("last_heartbeat_at", UtcDateTime(), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("agent_executions", "last_heartbeat_at")

"""Report runs under the repository scope: ``report_runs.repository_scope`` and its policy.

PostgreSQL: the new column records the scope of the session that started the run (the
``miyabi.repository_ids`` setting by default, ``NULL`` when unscoped), and ``report_runs`` gets
0003's policy name, enabled and forced: an unscoped session sees and writes every run; a scoped
one only runs whose repositories are all inside its scope, so never an unscoped run. Runs stored
before this revision keep ``NULL`` (the default is set after the column is added), so only
unscoped sessions see them. SQLite has no row-level security: only the nullable column.

Revision ID: 0005_report_runs_scope
Revises: 0004_heartbeat
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from miyabi_analytics._db.dialect import Dialect

revision: str = "0005_report_runs_scope"
down_revision: str | None = "0004_heartbeat"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POLICY = "miyabi_repository_scope"  # 0003's name: one policy name on every table
TABLE = "report_runs"
COLUMN = "repository_scope"

_SETTING = "current_setting('miyabi.repository_ids', true)"
_UNSCOPED = f"coalesce({_SETTING}, '') = ''"
_SCOPE = f"string_to_array({_SETTING}, ',')::uuid[]"
# An empty setting means unscoped: stored as NULL, never as '' (whose empty array would be
# contained in every scope).
DEFAULT = f"nullif({_SETTING}, '')"
CONDITION = (
    f"{_UNSCOPED} OR ({COLUMN} IS NOT NULL AND {COLUMN} <> '' "
    f"AND string_to_array({COLUMN}, ',')::uuid[] <@ {_SCOPE})"
)


def _is_postgresql() -> bool:
    return Dialect.of(op.get_bind()).is_postgresql


def upgrade() -> None:
    op.add_column(TABLE, sa.Column(COLUMN, sa.Text(), nullable=True))
    if not _is_postgresql():
        return  # SQLite has no row-level security; connect() refuses repository_ids there
    # After the column exists, so the rows already stored stay NULL (unscoped only), whatever
    # the scope of the session running this migration.
    op.alter_column(TABLE, COLUMN, server_default=sa.text(DEFAULT))
    op.execute(f"ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {TABLE} FORCE ROW LEVEL SECURITY")
    # DDL from this file's constants only; no value from outside reaches it.
    op.execute(
        f"CREATE POLICY {POLICY} ON {TABLE} FOR ALL USING ({CONDITION}) WITH CHECK ({CONDITION})"
    )


def downgrade() -> None:
    if _is_postgresql():
        op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {TABLE}")
        op.execute(f"ALTER TABLE {TABLE} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {TABLE} DISABLE ROW LEVEL SECURITY")
    op.drop_column(TABLE, COLUMN)

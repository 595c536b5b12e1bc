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
from miyabi_analytics._db.summary import Shape, Tie, view_ddl

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


def _pg_view_sql(*, security_invoker: bool) -> str:
    """0001_initial's view, as ``CREATE OR REPLACE`` with or without the option.

    Without it, ``CREATE OR REPLACE`` also clears the option (PostgreSQL replaces the options).
    """
    return view_ddl(
        op.get_bind().dialect,
        tie=Tie.ID,
        shape=Shape.ORIGINAL,
        replace=True,
        security_invoker=security_invoker,
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

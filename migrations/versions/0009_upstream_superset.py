"""Upstream's view columns and metrics: the summary view a superset, JSON metrics counted.

**The view** (issue 14, items 4 and 5): ``v_business_agent_summary`` keeps its columns (one row
per execution) and appends upstream Miyabi's view columns it lacked, last, with upstream's names
and types: ``execution_id`` (uuid), ``log_count`` and ``error_count`` (bigint; logs at level
exactly ``'error'``). An agent type outside the 15 now has the category ``"other"`` (was NULL).
Upstream's view repeats an execution per distinct analytics row and multiplies ``log_count`` by
that fan-out; ours has one row per execution with its latest analytics
(:mod:`miyabi_analytics._db.summary.view`). PostgreSQL: ``CREATE OR REPLACE`` (it may append
columns), so grants and views built on it stay; SQLite: dropped and created.

**Metrics written as JSON** (item 6): upstream's writer stores metrics at ``result ->
'analysis_metrics'``. Triggers on ``agent_executions`` turn each such write, by any writer,
into the analytics row ``save_analysis_metrics`` would have stored, marked ``from_result``
(:mod:`miyabi_analytics._db.rules.materialise`). The documents already stored are materialised
once here, by an INSERT only (no execution row is updated: upstream's trigger would move its
``updated_at``).

Downgrade: drops the triggers, deletes exactly the ``from_result`` rows, drops the column, and
creates revision 0008's view again (PostgreSQL: its grants are kept; a view built on ours
would make the ``DROP`` fail, never ``CASCADE``).

Revision ID: 0009_upstream_superset
Revises: 0008_database_rules
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.rules import (
    add_marker_ddl,
    backfill_sql,
    create_materialise_ddl,
    delete_materialised_sql,
    drop_marker_ddl,
    drop_materialise_ddl,
)
from miyabi_analytics._db.summary import VIEW, Shape, Tie, drop_view_ddl, view_ddl

revision: str = "0009_upstream_superset"
down_revision: str | None = "0008_database_rules"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _view(shape: Shape, *, replace: bool) -> str:
    """The summary view of ``shape``: PostgreSQL's with 0003's ``security_invoker``."""
    bind = op.get_bind()
    if Dialect.of(bind).is_postgresql:
        return view_ddl(
            bind.dialect, tie=Tie.WRITE_ORDER, shape=shape, replace=replace, security_invoker=True
        )
    return view_ddl(bind.dialect, tie=Tie.WRITE_ORDER, shape=shape)


def _view_grants() -> list[tuple[str, str]]:
    """(grantee, privilege) of the view's grants but its owner's (PostgreSQL)."""
    rows = op.get_bind().execute(
        sa.text(
            "SELECT grantee, privilege_type FROM information_schema.role_table_grants "
            "WHERE table_schema = current_schema() AND table_name = :view "
            "AND grantee <> (SELECT pg_get_userbyid(relowner) FROM pg_class "
            "WHERE oid = to_regclass(:view))"
        ),
        {"view": VIEW},
    )
    return [(str(grantee), str(privilege)) for grantee, privilege in rows]


def upgrade() -> None:
    dialect = Dialect.of(op.get_bind())
    if dialect.is_postgresql:
        op.execute(_view(Shape.SUPERSET, replace=True))
        # The rate rule reads a float's shortest text, as Python's repr (the PostgreSQL default).
        op.execute("SET LOCAL extra_float_digits = 1")
    else:
        op.execute(drop_view_ddl())
        op.execute(_view(Shape.SUPERSET, replace=False))
    op.execute(add_marker_ddl(dialect))
    op.execute(backfill_sql(dialect))
    for statement in create_materialise_ddl(dialect):
        op.execute(statement)


def downgrade() -> None:
    dialect = Dialect.of(op.get_bind())
    for statement in drop_materialise_ddl(dialect):
        op.execute(statement)
    op.execute(delete_materialised_sql())
    op.execute(drop_marker_ddl())
    # CREATE OR REPLACE cannot take columns away: the view is created again.
    grants = _view_grants() if dialect.is_postgresql else []
    op.execute(f"DROP VIEW {VIEW}")
    op.execute(_view(Shape.ORIGINAL, replace=False))
    for grantee, privilege in grants:
        # Names from the catalog, quoted as identifiers; the privilege is a keyword from it.
        role = (
            "PUBLIC"
            if grantee == "PUBLIC"
            else op.get_bind().dialect.identifier_preparer.quote(grantee)
        )
        op.execute(f"GRANT {privilege} ON {VIEW} TO {role}")

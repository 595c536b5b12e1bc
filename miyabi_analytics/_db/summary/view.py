"""The summary row as one SELECT, and the view ``v_business_agent_summary`` compiled from it.

One row per execution: :data:`EXECUTION_COLUMNS` of ``agent_executions``, ``duration_seconds``,
``agent_category``, and the typed metric columns (:data:`~miyabi_analytics.vocabulary.
TYPED_METRICS`) of its latest analytics row, NULL where it has none. The migrations create the
view from :func:`view_ddl` with the options of their time (the tie-break, ``security_invoker``);
``tests/db/test_summary_definition.py`` holds the view to :func:`summary_select` row for row.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import Column, Float, MetaData, Numeric, Select, Table, and_, select
from sqlalchemy.engine.interfaces import Dialect as SQLDialect
from sqlalchemy.types import TypeEngine

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.schema import analytics, executions
from miyabi_analytics._db.summary.rules import (
    DurationSeconds,
    Tie,
    agent_category_of,
    is_latest_analytics,
)
from miyabi_analytics.vocabulary import TYPED_METRICS

__all__ = [
    "EXECUTION_COLUMNS",
    "VIEW",
    "drop_view_ddl",
    "summary_select",
    "summary_table",
    "view_ddl",
]

VIEW: Final = "v_business_agent_summary"

EXECUTION_COLUMNS: Final[tuple[str, ...]] = (
    "id",
    "repository_id",
    "user_id",
    "agent_type",
    "issue_number",
    "status",
    "started_at",
    "completed_at",
    "error_message",
    "result",
    "quality_score",
    "pr_number",
    "created_at",
    "updated_at",
)
"""The columns of ``agent_executions`` the summary carries, in its order (not the heartbeat)."""


def summary_select(*, tie: Tie = Tie.WRITE_ORDER) -> Select[Any]:
    """The summary's rows: what the view returns, as a SELECT on the tables.

    The latest analytics row is found by an anti-join ("no later row exists"): set based, so a
    whole read is two hash joins, and a filtered one still uses the indexes.
    """
    e = executions.alias("e")
    a, b = analytics.alias("a"), analytics.alias("b")
    latest = and_(a.c.execution_id == e.c.id, is_latest_analytics(a, b, tie=tie))
    return select(
        *(e.c[name] for name in EXECUTION_COLUMNS),
        DurationSeconds(e.c.started_at, e.c.completed_at).label("duration_seconds"),
        agent_category_of(e.c.agent_type).label("agent_category"),
        *(a.c[name] for name in TYPED_METRICS),
    ).select_from(e.outerjoin(a, latest))


def view_ddl(
    dialect: SQLDialect,
    *,
    tie: Tie = Tie.WRITE_ORDER,
    replace: bool = False,
    security_invoker: bool = False,
) -> str:
    """``CREATE [OR REPLACE] VIEW`` of :func:`summary_select`, compiled for ``dialect``.

    ``security_invoker`` (PostgreSQL 15+) reads the tables with the caller's row-level
    policies; ``CREATE OR REPLACE`` without it clears it. The SQL holds only this module's
    constants, inlined by the compiler.
    """
    if (replace or security_invoker) and not Dialect.of(dialect).is_postgresql:
        raise ValueError("CREATE OR REPLACE and security_invoker are PostgreSQL's")
    body = summary_select(tie=tie).compile(
        dialect=dialect, compile_kwargs={"literal_binds": True}
    )
    create = "CREATE OR REPLACE VIEW" if replace else "CREATE VIEW"
    options = " WITH (security_invoker = true)" if security_invoker else ""
    return f"{create} {VIEW}{options} AS {body}"


def drop_view_ddl() -> str:
    """``DROP VIEW IF EXISTS`` of the summary view."""
    return f"DROP VIEW IF EXISTS {VIEW}"


def _as_read(type_: TypeEngine[Any]) -> TypeEngine[Any]:
    """The type a column of the view is read with: ``numeric(p, 2)`` metrics as floats."""
    return Float() if isinstance(type_, Numeric) else type_


def summary_table(metadata: MetaData) -> Table:
    """The view as a Table in ``metadata``: :func:`summary_select`'s columns, by name."""
    return Table(
        VIEW,
        metadata,
        *(Column(c.name, _as_read(c.type)) for c in summary_select().selected_columns),
    )

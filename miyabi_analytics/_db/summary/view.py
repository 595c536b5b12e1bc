"""The summary row as one SELECT, and the view ``v_business_agent_summary`` compiled from it.

One row per execution: :data:`EXECUTION_COLUMNS` of ``agent_executions``, ``duration_seconds``,
``agent_category``, and the typed metric columns (:data:`~miyabi_analytics.vocabulary.
TYPED_METRICS`) of its latest analytics row, NULL where it has none. From revision 0009
(:attr:`~.rules.Shape.SUPERSET`) the view also has, last, every column of upstream Miyabi's view
that ours lacked (:data:`UPSTREAM_COLUMNS`), with upstream's names and types, so upstream's
queries keep working:

- ``execution_id`` (uuid): the execution's ``id``;
- ``log_count`` (bigint): its rows in ``agent_execution_logs``;
- ``error_count`` (bigint): those with ``log_level`` exactly ``'error'`` (upstream's rule:
  ``critical`` or ``ERROR`` do not count).

**Unlike upstream's view**, which joins analytics and logs and groups by execution and five
analytics columns, ours has one row per execution, with its latest analytics row. Upstream's
repeats an execution once per distinct tuple of those analytics values, and multiplies its
``log_count``/``error_count`` by the analytics rows joined (2 analytics rows and 3 logs: one row
with ``log_count`` 6 when the values are equal, two rows of 3 when they differ); ours counts each
log once. The counts are correlated scalar subqueries: a SELECT that does not name them never
reads the logs (the view stays flattenable; ``tests/db/test_summary_superset.py`` checks the
plans), so :func:`summary_table`, what ``read_summary`` reads, leaves them out.

The migrations create the view from :func:`view_ddl` with the options of their time (the
tie-break, the shape, ``security_invoker``); ``tests/db/test_summary_definition.py`` holds the
view to :func:`summary_select` row for row.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Float,
    MetaData,
    Numeric,
    Select,
    String,
    Table,
    and_,
    func,
    literal,
    select,
    type_coerce,
)
from sqlalchemy.engine.interfaces import Dialect as SQLDialect
from sqlalchemy.types import TypeEngine

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.schema import analytics, executions, logs
from miyabi_analytics._db.summary.rules import (
    DurationSeconds,
    Shape,
    Tie,
    agent_category_of,
    is_latest_analytics,
)
from miyabi_analytics.vocabulary import TYPED_METRICS

__all__ = [
    "EXECUTION_COLUMNS",
    "UPSTREAM_COLUMNS",
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

UPSTREAM_COLUMNS: Final[tuple[str, ...]] = ("execution_id", "log_count", "error_count")
"""Upstream's view columns ours lacked, appended in this order by :attr:`Shape.SUPERSET`."""

_UPSTREAM_ERROR: Final = "error"
"""The one ``log_level`` upstream's ``error_count`` counts, spelled exactly."""


def _log_count(execution_id: ColumnElement[Any], *, errors: bool) -> ColumnElement[int]:
    """The execution's logs (``errors``: at level ``'error'``) as a correlated ``count(*)``."""
    lg = logs.alias("l_err" if errors else "l_all")
    found = select(func.count()).select_from(lg).where(lg.c.execution_id == execution_id)
    if errors:
        level = literal(_UPSTREAM_ERROR, String, literal_execute=True)  # inlined in the DDL
        found = found.where(lg.c.log_level == level)
    return type_coerce(found.scalar_subquery(), BigInteger())


def summary_select(*, tie: Tie = Tie.WRITE_ORDER, shape: Shape = Shape.SUPERSET) -> Select[Any]:
    """The summary's rows: what the view returns, as a SELECT on the tables.

    The latest analytics row is found by an anti-join ("no later row exists"): set based, so a
    whole read is two hash joins, and a filtered one still uses the indexes. ``shape``: the
    revision's columns and category rule (:class:`Shape`).
    """
    e = executions.alias("e")
    a, b = analytics.alias("a"), analytics.alias("b")
    latest = and_(a.c.execution_id == e.c.id, is_latest_analytics(a, b, tie=tie))
    upstream: list[ColumnElement[Any]] = []
    if shape is Shape.SUPERSET:
        upstream = [
            e.c.id.label("execution_id"),
            _log_count(e.c.id, errors=False).label("log_count"),
            _log_count(e.c.id, errors=True).label("error_count"),
        ]
    return select(
        *(e.c[name] for name in EXECUTION_COLUMNS),
        DurationSeconds(e.c.started_at, e.c.completed_at).label("duration_seconds"),
        agent_category_of(e.c.agent_type, shape=shape).label("agent_category"),
        *(a.c[name] for name in TYPED_METRICS),
        *upstream,
    ).select_from(e.outerjoin(a, latest))


def view_ddl(
    dialect: SQLDialect,
    *,
    tie: Tie = Tie.WRITE_ORDER,
    shape: Shape = Shape.SUPERSET,
    replace: bool = False,
    security_invoker: bool = False,
) -> str:
    """``CREATE [OR REPLACE] VIEW`` of :func:`summary_select`, compiled for ``dialect``.

    ``tie`` and ``shape``: the revision's (a migration passes its own; the defaults are the
    newest). ``security_invoker`` (PostgreSQL 15+) reads the tables with the caller's row-level
    policies; ``CREATE OR REPLACE`` without it clears it. The SQL holds only this module's
    constants, inlined by the compiler.
    """
    if (replace or security_invoker) and not Dialect.of(dialect).is_postgresql:
        raise ValueError("CREATE OR REPLACE and security_invoker are PostgreSQL's")
    body = summary_select(tie=tie, shape=shape).compile(
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
    """The view as a Table in ``metadata``: :func:`summary_select`'s columns, by name.

    Without :data:`UPSTREAM_COLUMNS`: they are upstream's, for upstream's queries, and what
    reads this table (``read_summary`` and the aggregates) neither returns nor pays for them.
    """
    return Table(
        VIEW,
        metadata,
        *(
            Column(c.name, _as_read(c.type))
            for c in summary_select().selected_columns
            if c.name not in UPSTREAM_COLUMNS
        ),
    )

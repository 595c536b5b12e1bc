"""What a PostgreSQL database holds, read from its catalog: the facts adoption decides on.

Read-only queries with bound values; nothing here writes. ``to_regclass`` resolves names through
the session's ``search_path``, as every unqualified statement of ours and of the upstream writer
does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlalchemy import Connection, text

__all__ = [
    "OUR_OBJECTS",
    "Column",
    "columns",
    "exists",
    "has_constraint",
    "has_single_column_index",
    "invalid_constraints",
    "offending_ids",
    "view_dependents",
    "view_grants",
]

OUR_OBJECTS: Final = (
    "agent_executions",
    "business_agent_analytics",
    "agent_execution_logs",
    "report_runs",
    "v_business_agent_summary",
)
"""The relations miyabi-analytics creates (a database holding none of them is 'empty')."""


@dataclass(frozen=True, slots=True)
class Column:
    """One column as the catalog describes it."""

    name: str
    type: str  # format_type(): e.g. "uuid", "timestamp with time zone", "character varying(50)"
    nullable: bool
    default: str | None  # pg_get_expr of the default, None when it has none


def exists(conn: Connection, relation: str) -> bool:
    """Whether a table or view of that name is visible on the search path."""
    found = conn.execute(text("SELECT to_regclass(:r) IS NOT NULL"), {"r": relation}).scalar()
    return bool(found)


def columns(conn: Connection, table: str) -> dict[str, Column]:
    """The table's columns by name, in their order (empty if there is no such table)."""
    rows = conn.execute(
        text(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, "
            "pg_get_expr(d.adbin, d.adrelid) "
            "FROM pg_attribute a LEFT JOIN pg_attrdef d "
            "ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
            "WHERE a.attrelid = to_regclass(:t) AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY a.attnum"
        ),
        {"t": table},
    )
    return {name: Column(name, kind, nullable, default) for name, kind, nullable, default in rows}


def has_constraint(conn: Connection, table: str, name: str) -> bool:
    """Whether ``table`` has a constraint called ``name``."""
    found = conn.execute(
        text("SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass(:t) AND conname = :n"),
        {"t": table, "n": name},
    ).first()
    return found is not None


def invalid_constraints(conn: Connection, table: str) -> list[str]:
    """Names of the table's constraints left ``NOT VALID``."""
    rows = conn.execute(
        text(
            "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(:t) "
            "AND NOT convalidated ORDER BY conname"
        ),
        {"t": table},
    )
    return list(rows.scalars())


def has_single_column_index(conn: Connection, table: str, column: str) -> bool:
    """Whether a plain btree index on exactly ``column`` exists (under any name).

    An upstream ``idx_agent_executions_status`` serves every query ours would: a second index on
    the same column would only slow their writes.
    """
    found = conn.execute(
        text(
            "SELECT 1 FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "JOIN pg_am m ON m.oid = i.relam "
            "JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0] "
            "WHERE x.indrelid = to_regclass(:t) AND m.amname = 'btree' AND x.indnkeyatts = 1 "
            "AND x.indpred IS NULL AND x.indexprs IS NULL AND a.attname = :c"
        ),
        {"t": table, "c": column},
    ).first()
    return found is not None


def offending_ids(conn: Connection, table: str, violated: str, *, limit: int) -> list[str]:
    """Ids of rows for which the check ``violated`` is false, at most ``limit`` of them.

    ``violated`` is the negation of a check this package defines (a constant, never input).
    """
    rows = conn.execute(
        text(f"SELECT CAST(id AS text) FROM {table} WHERE {violated} ORDER BY id LIMIT :n"),  # noqa: S608
        {"n": limit},
    )
    return list(rows.scalars())


def view_dependents(conn: Connection, view: str) -> list[str]:
    """Other views built on ``view`` (a plain ``DROP VIEW`` would fail on them)."""
    rows = conn.execute(
        text(
            "SELECT DISTINCT c.relname FROM pg_depend d "
            "JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class c ON c.oid = r.ev_class "
            "WHERE d.refobjid = to_regclass(:v) AND c.oid <> d.refobjid ORDER BY c.relname"
        ),
        {"v": view},
    )
    return list(rows.scalars())


def view_grants(conn: Connection, view: str) -> list[tuple[str, str]]:
    """(grantee, privilege) pairs granted on ``view`` to roles other than its owner."""
    rows = conn.execute(
        text(
            "SELECT CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(g.grantee) END, "
            "g.privilege_type FROM pg_class c, aclexplode(c.relacl) g "
            "WHERE c.oid = to_regclass(:v) AND g.grantee <> c.relowner "
            "ORDER BY 1, 2"
        ),
        {"v": view},
    )
    return [(str(grantee), str(privilege)) for grantee, privilege in rows]

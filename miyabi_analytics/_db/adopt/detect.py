"""Which kind of database ``migrate`` was pointed at: empty, ours, upstream Miyabi, or unknown.

*Ours* has alembic's version table. *Empty* holds none of the relations we create (other tables
of the same database are left alone). *Upstream* is what the upstream Miyabi migrations
(``crates/miyabi-web-api/migrations``, through ``20251126000000_business_agent_persistence``)
leave: the three tables with their columns, uuid ids, ``timestamptz`` times, no version table.
Anything else is refused with one line that names what was found, before anything is written.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from sqlalchemy import Connection, text

from miyabi_analytics._db.adopt.catalog import OUR_OBJECTS, columns, exists
from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.summary import EXECUTION_COLUMNS
from miyabi_analytics.errors import SchemaError
from miyabi_analytics.vocabulary import TYPED_METRICS

__all__ = ["ADOPTION_RECORD", "Kind", "classify"]

ADOPTION_RECORD: Final = "miyabi_adoption"
"""The table in which adoption notes what it changed, so that it can be undone."""

# The columns each upstream table has after 20251126 (extra columns are kept, not required).
_UPSTREAM_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    # upstream never creates quality_score / pr_number (adoption adds them where absent)
    "agent_executions": tuple(
        c for c in EXECUTION_COLUMNS if c not in ("quality_score", "pr_number")
    ),
    "business_agent_analytics": (
        "id", "execution_id", "agent_type", "metrics", *TYPED_METRICS, "created_at",
    ),
    "agent_execution_logs": ("id", "execution_id", "log_level", "message", "metadata", "logged_at"),
}
_TIMES: Final = ("started_at", "completed_at", "created_at", "updated_at")


class Kind(StrEnum):
    """What ``migrate`` found."""

    EMPTY = "empty"
    OURS = "ours"
    UPSTREAM = "upstream"


def classify(conn: Connection) -> Kind:
    """The database's kind; :class:`SchemaError` (one line) for one we must not touch."""
    if _has_version_table(conn):
        return Kind.OURS
    found = [name for name in OUR_OBJECTS if _present(conn, name)]
    if not found:
        return Kind.EMPTY
    problem = _upstream_problem(conn) if Dialect.of(conn).is_postgresql else "not PostgreSQL"
    if problem is None:
        return Kind.UPSTREAM
    raise SchemaError(
        f"refusing to migrate: found {', '.join(found)} but no alembic_version table, and it is "
        f"not an upstream Miyabi database ({problem}); nothing was changed"
    )


def _has_version_table(conn: Connection) -> bool:
    return _present(conn, "alembic_version")


def _present(conn: Connection, name: str) -> bool:
    if Dialect.of(conn).is_postgresql:
        return exists(conn, name)
    row = conn.execute(text("SELECT 1 FROM sqlite_master WHERE name = :n"), {"n": name}).first()
    return row is not None


def _upstream_problem(conn: Connection) -> str | None:
    """Why this is not the upstream shape, or None if it is."""
    if exists(conn, "report_runs"):
        return "report_runs exists, which upstream never creates"
    for table, required in _UPSTREAM_COLUMNS.items():
        have = columns(conn, table)
        if not have:
            return f"no table {table}"
        missing = [c for c in required if c not in have]
        if missing:
            return f"{table} lacks {', '.join(missing)}"
    executions = columns(conn, "agent_executions")
    if executions["id"].type != "uuid":
        return f"agent_executions.id is {executions['id'].type}, not uuid"
    naive = [c for c in _TIMES if executions[c].type != "timestamp with time zone"]
    if naive:
        return (
            f"agent_executions.{naive[0]} is {executions[naive[0]].type}: run the upstream "
            "migration 20251123000001_fix_timestamp_types first"
        )
    return None

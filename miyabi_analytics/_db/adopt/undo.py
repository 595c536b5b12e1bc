"""Back to the upstream shape: undo what adoption recorded, after alembic went down to 0001.

Upstream's data stays as it is, and so do the rows written since (their ids and timestamps are
upstream's types). What goes: our view (upstream's is created again from its recorded
definition, with its comment and grants), the constraints, ``NOT NULL`` s and indexes adoption
added, the column defaults our revisions changed (restored as recorded), alembic's version
table and the record itself. ``quality_score`` and ``pr_number`` stay even where adoption
added them: the upstream writer names them in every INSERT and UPDATE.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from miyabi_analytics._db.adopt.catalog import exists
from miyabi_analytics._db.adopt.detect import ADOPTION_RECORD
from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.summary import VIEW

__all__ = ["drop_added_constraints", "is_adopted", "undo_adoption"]


def is_adopted(conn: Connection) -> bool:
    """Whether this database was adopted from upstream (and not yet given back)."""
    return Dialect.of(conn).is_postgresql and exists(conn, ADOPTION_RECORD)


def _records(conn: Connection) -> dict[str, list[tuple[str, str | None]]]:
    by_kind: dict[str, list[tuple[str, str | None]]] = {}
    rows = conn.execute(text(f"SELECT kind, name, detail FROM {ADOPTION_RECORD}"))  # noqa: S608
    for kind, name, detail in rows:
        by_kind.setdefault(kind, []).append((name, detail))
    return by_kind


def drop_added_constraints(conn: Connection) -> list[str]:
    """Drop the check constraints adoption added; run before alembic goes down to 0001.

    Before, because our revisions rename them on the way down (0007 gives them back the names
    0001 gave them on a database of ours).
    """
    lines = []
    for name, table in _records(conn).get("constraint", ()):
        conn.execute(text(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}"))
        lines.append(f"drop constraint {name}")
    return lines


def undo_adoption(conn: Connection) -> list[str]:
    """Give the database its upstream shape back; one line per change. Run at revision 0001."""
    by_kind = _records(conn)
    lines: list[str] = []

    def run(line: str, statement: str) -> None:
        conn.execute(text(statement))
        lines.append(line)

    preparer = conn.dialect.identifier_preparer
    run(f"drop our view {VIEW}", f"DROP VIEW {VIEW}")
    for _, definition in by_kind.get("view", ()):
        run(f"create upstream's view {VIEW} again", f"CREATE VIEW {VIEW} AS {definition}")
        for _, comment in by_kind.get("view_comment", ()):
            if comment is not None:
                conn.execute(text(f"COMMENT ON VIEW {VIEW} IS {_literal(conn, comment)}"))
        for grant, _ in by_kind.get("grant", ()):
            grantee, privilege = grant.rsplit(":", 1)
            role = grantee if grantee == "PUBLIC" else preparer.quote(grantee)
            conn.execute(text(f"GRANT {privilege} ON {VIEW} TO {role}"))
    for column, _ in by_kind.get("not_null", ()):
        table, name = column.split(".")
        run(f"drop NOT NULL on {column}", f"ALTER TABLE {table} ALTER COLUMN {name} DROP NOT NULL")
    for name, _ in by_kind.get("index", ()):
        run(f"drop index {name}", f"DROP INDEX IF EXISTS {name}")
    for column, default in by_kind.get("default", ()):
        table, name = column.split(".")
        action = "DROP DEFAULT" if default is None else f"SET DEFAULT {default}"
        conn.execute(text(f"ALTER TABLE {table} ALTER COLUMN {name} {action}"))
    lines.append("restore upstream's column defaults")
    run("drop alembic_version", "DROP TABLE alembic_version")
    run(f"drop {ADOPTION_RECORD}", f"DROP TABLE {ADOPTION_RECORD}")
    return lines


def _literal(conn: Connection, value: str) -> str:
    """A string literal for DDL that takes no parameters (COMMENT ON)."""
    quoted = conn.execute(text("SELECT quote_literal(CAST(:v AS text))"), {"v": value}).scalar()
    return str(quoted)

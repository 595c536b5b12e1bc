"""The steps that bring an upstream Miyabi database to the shape of our revision 0001.

From there alembic runs our later revisions as on any database of ours. Every step adds: a
column, a constraint, an index, our view in place of theirs. None rewrites a stored row (no
UPDATE, so upstream's ``updated_at`` trigger never fires), none drops a row, and theirs stay
(foreign keys to ``users``/``repositories``, triggers, extra columns, unrelated tables).

A rule the stored rows already break cannot be made valid without changing them, so it is
added ``NOT VALID`` (it holds for every new write, the old rows keep their values), the step's
line names the rows, and :func:`validation_steps` validates it on a later ``migrate`` once the
data allows. ``NOT NULL`` is a column property PostgreSQL cannot add unvalidated: where NULLs
exist it is a ``CHECK (column IS NOT NULL) NOT VALID`` first, turned into ``NOT NULL`` later.

Each step notes in :data:`~.detect.ADOPTION_RECORD` what it changed, for :mod:`.undo`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import CheckConstraint, Connection, Table, text

from miyabi_analytics._db.adopt.catalog import (
    columns,
    exists,
    has_constraint,
    has_single_column_index,
    invalid_constraints,
    offending_ids,
    view_dependents,
    view_grants,
)
from miyabi_analytics._db.adopt.detect import ADOPTION_RECORD
from miyabi_analytics._db.schema import analytics, executions, logs
from miyabi_analytics._db.summary import VIEW
from miyabi_analytics.errors import SchemaError

__all__ = ["ADOPTED_REVISION", "Step", "adoption_steps", "validation_steps"]

ADOPTED_REVISION: Final = "0001_initial"
"""The revision whose shape :func:`adoption_steps` reproduces; alembic goes on from it."""

_TABLES: Final = (executions, analytics, logs)
_SHOWN: Final = 20  # offending ids named per rule
_ADDED_COLUMNS: Final = (("quality_score", "integer"), ("pr_number", "integer"))  # 0001's


@dataclass(frozen=True, slots=True)
class Step:
    """One change: the line ``migrate`` prints for it, its DDL, and what it records for undo."""

    line: str
    statements: tuple[str, ...] = ()
    records: tuple[tuple[str, str, str | None], ...] = field(default=())
    forget: tuple[tuple[str, str], ...] = field(default=())

    def run(self, conn: Connection) -> None:
        """Execute the DDL (constants of this package and catalog text) and note the records."""
        for statement in self.statements:
            conn.execute(text(statement))
        for kind, name in self.forget:
            conn.execute(
                text(f"DELETE FROM {ADOPTION_RECORD} WHERE kind = :k AND name = :n"),  # noqa: S608
                {"k": kind, "n": name},
            )
        for kind, name, detail in self.records:
            conn.execute(
                text(f"INSERT INTO {ADOPTION_RECORD} (kind, name, detail) VALUES (:k, :n, :d)"),  # noqa: S608
                {"k": kind, "n": name, "d": detail},
            )


def adoption_steps(conn: Connection, view_sql: str) -> list[Step]:
    """The plan for this upstream database (read from its catalog; nothing is written).

    ``view_sql`` creates revision 0001's view. Raises :class:`SchemaError` if upstream's view
    has views of its own built on it (replacing it would need ``CASCADE``, which we never use).
    """
    return [
        _record_table(conn),
        *_columns(conn),
        *_not_nulls(conn),
        *_checks(conn),
        *_indexes(conn),
        _view(conn, view_sql),
    ]


def validation_steps(conn: Connection) -> list[Step]:
    """Validate the rules adoption left ``NOT VALID`` where the rows now allow it."""
    steps: list[Step] = []
    for table in _TABLES:
        for name in invalid_constraints(conn, table.name):
            rule = _rule_named(table, name)
            if rule is None:
                continue  # not ours: leave it to its owner
            broken, column = rule
            ids = offending_ids(conn, table.name, broken, limit=_SHOWN)
            if ids:
                rows = _rows(conn, table, broken, ids)
                steps.append(Step(f"still NOT VALID: {name} on {table.name}, {rows}"))
            elif column is None:
                steps.append(
                    Step(
                        f"validate {name} on {table.name}: no row breaks it now",
                        (f"ALTER TABLE {table.name} VALIDATE CONSTRAINT {name}",),
                    )
                )
            else:
                steps.append(
                    Step(
                        f"set NOT NULL on {table.name}.{column}: no row is NULL now",
                        (
                            f"ALTER TABLE {table.name} VALIDATE CONSTRAINT {name}",
                            f"ALTER TABLE {table.name} ALTER COLUMN {column} SET NOT NULL",
                            f"ALTER TABLE {table.name} DROP CONSTRAINT {name}",
                        ),
                        (("not_null", f"{table.name}.{column}", None),),
                        (("constraint", name),),
                    )
                )
    return steps


# -- the steps ---------------------------------------------------------------------------------


def _record_table(conn: Connection) -> Step:
    records: list[tuple[str, str, str | None]] = []
    for table in _TABLES:
        for column in columns(conn, table.name).values():
            records.append(("default", f"{table.name}.{column.name}", column.default))
    return Step(
        f"create {ADOPTION_RECORD}: what adoption changes, so that "
        "'miyabi-analytics downgrade --revision upstream' can undo it",
        (
            f"CREATE TABLE {ADOPTION_RECORD} (kind text NOT NULL, name text NOT NULL, "
            "detail text, PRIMARY KEY (kind, name))",
        ),
        tuple(records),
    )


def _columns(conn: Connection) -> Iterator[Step]:
    have = columns(conn, executions.name)
    for name, kind in _ADDED_COLUMNS:
        if name not in have:
            yield Step(
                f"add column agent_executions.{name} {kind} (NULL for the stored rows; "
                "the upstream writer names it)",
                (f"ALTER TABLE agent_executions ADD COLUMN {name} {kind}",),
                (("column", f"agent_executions.{name}", None),),
            )


def _not_null_check(table: Table, column: str) -> str:
    return f"ck_{table.name}_{column}_not_null"


def _not_nulls(conn: Connection) -> Iterator[Step]:
    for table in _TABLES:
        have = columns(conn, table.name)
        for column in table.columns:
            if column.nullable or column.primary_key or not have[column.name].nullable:
                continue
            broken = f"{column.name} IS NULL"
            ids = offending_ids(conn, table.name, broken, limit=_SHOWN)
            if not ids:
                yield Step(
                    f"set NOT NULL on {table.name}.{column.name}",
                    (f"ALTER TABLE {table.name} ALTER COLUMN {column.name} SET NOT NULL",),
                    (("not_null", f"{table.name}.{column.name}", None),),
                )
                continue
            name = _not_null_check(table, column.name)
            yield Step(
                f"left NOT VALID: {name} ({table.name}.{column.name} IS NOT NULL), "
                f"{_rows(conn, table, broken, ids)}",
                (
                    f"ALTER TABLE {table.name} ADD CONSTRAINT {name} "
                    f"CHECK ({column.name} IS NOT NULL) NOT VALID",
                ),
                (("constraint", name, table.name),),
            )


def _ours(table: Table) -> Iterator[tuple[str, str]]:
    """(full name, SQL) of the table's check constraints as the models name them."""
    for constraint in table.constraints:
        if isinstance(constraint, CheckConstraint):
            yield str(constraint.name), str(constraint.sqltext)


def _checks(conn: Connection) -> Iterator[Step]:
    for table in _TABLES:
        for name, check in _ours(table):
            if has_constraint(conn, table.name, name):
                continue
            broken = f"NOT ({check})"
            have = columns(conn, table.name)
            added = [c for c, _ in _ADDED_COLUMNS if table is executions and c not in have]
            # A column adoption adds is NULL in every stored row: no row can break its rule.
            ids = (
                []
                if any(c in check for c in added)
                else offending_ids(conn, table.name, broken, limit=_SHOWN)
            )
            add = f"ALTER TABLE {table.name} ADD CONSTRAINT {name} CHECK ({check})"
            if ids:
                yield Step(
                    f"left NOT VALID: {name} ({check}), {_rows(conn, table, broken, ids)}",
                    (f"{add} NOT VALID",),
                    (("constraint", name, table.name),),
                )
            else:
                yield Step(
                    f"add constraint {name}: {check}", (add,), (("constraint", name, table.name),)
                )


def _indexes(conn: Connection) -> Iterator[Step]:
    for table in _TABLES:
        for index in table.indexes:
            if len(index.columns) != 1:  # a later revision's (0011: logs' error count)
                continue
            (column,) = index.columns
            if has_single_column_index(conn, table.name, column.name):
                continue
            name = f"ix_{table.name}_{column.name}"
            yield Step(
                f"create index {name} on {table.name} ({column.name})",
                (f"CREATE INDEX {name} ON {table.name} ({column.name})",),
                (("index", name, table.name),),
            )


def _view(conn: Connection, view_sql: str) -> Step:
    records: list[tuple[str, str, str | None]] = []
    statements: list[str] = []
    line = f"create view {VIEW} (one row per execution)"
    if exists(conn, VIEW):
        dependents = view_dependents(conn, VIEW)
        if dependents:
            raise SchemaError(
                f"refusing to adopt: views {', '.join(dependents)} are built on {VIEW}, which "
                "adoption replaces; drop or move them first (nothing was changed)"
            )
        definition, comment = conn.execute(
            text(
                "SELECT pg_get_viewdef(to_regclass(:v), true), "
                "obj_description(to_regclass(:v), 'pg_class')"
            ),
            {"v": VIEW},
        ).one()
        records += [("view", VIEW, definition), ("view_comment", VIEW, comment)]
        statements.append(f"DROP VIEW {VIEW}")
        line = (
            f"replace view {VIEW}: upstream's repeats an execution per analytics row, "
            "ours has one row per execution (the latest analytics) and keeps every "
            "upstream column"
        )
    statements.append(view_sql)
    preparer = conn.dialect.identifier_preparer
    for grantee, privilege in view_grants(conn, VIEW) if exists(conn, VIEW) else ():
        role = grantee if grantee == "PUBLIC" else preparer.quote(grantee)
        statements.append(f"GRANT {privilege} ON {VIEW} TO {role}")
        records.append(("grant", f"{grantee}:{privilege}", None))
    return Step(line, tuple(statements), tuple(records))


# -- helpers -----------------------------------------------------------------------------------


def _rows(conn: Connection, table: Table, broken: str, ids: list[str]) -> str:
    total = conn.execute(
        text(f"SELECT count(*) FROM {table.name} WHERE {broken}")  # noqa: S608
    ).scalar_one()
    more = f" and {total - len(ids)} more" if total > len(ids) else ""
    return (
        f"{total} stored row(s) break it (id {', '.join(ids)}{more}); it holds for new "
        "writes, and the next migrate validates it once those rows are fixed"
    )


def _rule_named(table: Table, name: str) -> tuple[str, str | None] | None:
    """(violation SQL, the column for a NOT NULL check) of one of our rules, by name."""
    for column in table.columns:
        if name == _not_null_check(table, column.name):
            return f"{column.name} IS NULL", column.name
    for full, check in _ours(table):
        if name == full:
            return f"NOT ({check})", None
    return None

"""A write refused by a foreign key: which column, which value, read from the refusal itself.

An adopted upstream database has ``agent_executions.repository_id REFERENCES repositories(id)``
and ``user_id REFERENCES users(id)``; a value that is not there is refused by the database, and
only the database may say so: ``repositories`` can be under row-level security, so looking the
value up first would not tell. The refusal names what it refused:

- PostgreSQL: SQLSTATE ``23503``; DETAIL ``Key (repository_id)=(...) is not present in table
  "repositories".`` (just ``Key is not present in table ...`` when the writer may not see the
  key, e.g. under row-level security), and the constraint's name in the diagnostics, whose
  columns the catalog knows whatever the name is.
- SQLite: ``FOREIGN KEY constraint failed`` and nothing else; the table's foreign keys
  (``PRAGMA foreign_key_list``) say which columns to look at, after the write was rolled back.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    bindparam,
    column,
    exists,
    select,
    table,
    text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ColumnClause

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.retry import sqlstate
from miyabi_analytics._db.schema import executions
from miyabi_analytics._db.tx import begin
from miyabi_analytics.errors import NotFound

__all__ = [
    "FK_VIOLATION", "MissingKey", "Written", "missing_key", "references_found", "refused_columns",
    "unmatched",
]

Written = Callable[[str], Iterable[object]]
"""The values a write put in a column of ``agent_executions``, by column name."""

FK_VIOLATION: Final = "23503"
_SQLITE_MESSAGE: Final = "FOREIGN KEY constraint failed"
# Only the referencing side: "still referenced from" is a delete of a referenced row.
_NOT_PRESENT: Final = re.compile(r"is not present in table")
_KEY: Final = re.compile(r"Key \((?P<columns>[^)]*)\)=\((?P<values>.*)\) is not present in table")
_CATALOG: Final = text(
    "SELECT a.attname FROM pg_constraint c JOIN pg_attribute a "
    "ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey) "
    "WHERE c.contype = 'f' AND c.conname = :name AND c.conrelid = to_regclass(:table) "
    "ORDER BY array_position(c.conkey, a.attnum)"
)
_SQLITE_KEYS: Final = text(
    'SELECT "table", "from", "to" FROM pragma_foreign_key_list(:table) ORDER BY id, seq'
)


@contextmanager
def references_found(bind: Engine | Connection, written: Written) -> Iterator[None]:
    """A foreign key of ``agent_executions`` refusing a written value, as :class:`NotFound`.

    A value ``repositories``/``users`` lack is refused by the database (never looked up
    first: ``repositories`` may be under row-level security) and raised as ``NotFound`` naming
    the column and the value. ``written(column)`` gives the values written, read only when the
    refusal does not name the value. Entered outside the write's transaction, so that is
    rolled back (nothing of the write is kept) before anything is read.
    """
    try:
        yield
    except DBAPIError as exc:
        key = missing_key(exc, executions.name)
        if key is None:
            raise
        error = _not_found(bind, key, written)
        if error is None:
            raise
        raise error from exc


def _not_found(bind: Engine | Connection, key: MissingKey, written: Written) -> NotFound | None:
    """The NotFound for ``key``: its column from the error (or catalog), its value if known."""
    if key.columns and key.values:
        values: tuple[object, ...] = tuple(_as_key(v) for v in key.values)
        return NotFound(", ".join(key.columns), values[0] if len(values) == 1 else values)
    with begin(bind) as conn:
        if not Dialect.of(conn).is_postgresql:
            found = unmatched(conn, executions, written)
            return None if found is None else NotFound(*found)
        columns = refused_columns(conn, key, executions.name)
    if len(columns) != 1:
        return None  # a constraint the catalog does not show: leave the database's own error
    candidates = sorted({v for v in written(columns[0]) if v is not None}, key=str)
    if len(candidates) == 1:
        return NotFound(columns[0], candidates[0])
    # The database did not say which value (the key is hidden from this writer): all of them.
    return NotFound(columns[0], tuple(candidates))


def _as_key(value: str) -> object:
    try:
        return uuid.UUID(value)
    except ValueError:
        return value


@dataclass(frozen=True, slots=True)
class MissingKey:
    """A foreign key refusing a written value; each part ``None`` where the error is silent."""

    columns: tuple[str, ...] = ()
    values: tuple[str, ...] = ()
    constraint: str | None = None


def missing_key(exc: BaseException, table_name: str) -> MissingKey | None:
    """The foreign-key refusal of a write to ``table_name`` in ``exc``, else ``None``."""
    orig: BaseException | None = exc.orig if isinstance(exc, DBAPIError) else exc
    if orig is None:
        return None
    if sqlstate(orig) == FK_VIOLATION:
        diag = getattr(orig, "diag", None)
        if getattr(diag, "table_name", None) not in (None, table_name):
            return None
        detail = getattr(diag, "message_detail", None) or ""
        if detail and not _NOT_PRESENT.search(detail):
            return None
        constraint = getattr(diag, "constraint_name", None)
        found = _KEY.search(detail)
        if found is None:
            return MissingKey(constraint=constraint)
        columns = tuple(name.strip().strip('"') for name in found["columns"].split(","))
        values = tuple(value.strip() for value in found["values"].split(","))
        if len(values) != len(columns):
            values = ()  # a value with a comma in it: the columns are still right
        return MissingKey(columns, values, constraint)
    if isinstance(orig, sqlite3.IntegrityError) and str(orig) == _SQLITE_MESSAGE:
        return MissingKey()
    return None


def refused_columns(conn: Connection, key: MissingKey, table_name: str) -> tuple[str, ...]:
    """The referencing columns of ``key``'s constraint, from the error or the catalog."""
    if key.columns:
        return key.columns
    if key.constraint is None or conn.dialect.name != "postgresql":
        return ()
    rows = conn.execute(_CATALOG, {"name": key.constraint, "table": table_name})
    return tuple(str(name) for name in rows.scalars())


def unmatched(
    conn: Connection, child: Table, values: Callable[[str], Iterable[object]]
) -> tuple[str, object] | None:
    """SQLite: the first written ``(column, value)`` its parent table does not hold.

    Read after the refused write was rolled back (SQLite has no row-level security, so the
    parent's rows are what the foreign key saw). ``values(column)`` are the values written;
    each is bound with ``child``'s column type, so it is compared as it would have been stored.
    """
    keys = conn.execute(_SQLITE_KEYS, {"table": child.name}).all()
    for parent, name, referenced in keys:
        if name not in child.c or not referenced:
            continue  # not ours, or a key to the parent's primary key without naming it
        target: ColumnClause[Any] = column(str(referenced))
        source = table(str(parent), target)
        for value in values(name):
            if value is None:
                continue
            bound = bindparam(None, value, type_=child.c[name].type)
            found = select(exists().where(target == bound).select_from(source))
            if not conn.execute(found).scalar():
                return name, value
    return None

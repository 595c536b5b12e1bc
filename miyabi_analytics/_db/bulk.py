"""Fast multi-row writes: binary COPY on PostgreSQL, a raw executemany on SQLite.

Both take rows already validated and encoded by :func:`encoder`, in the table's column order,
and run on the caller's connection inside its transaction, so a failed batch leaves nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, cast

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb, set_json_dumps
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    bindparam,
    func,
    select,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.schema import CreateTable, DropTable
from sqlalchemy.types import TypeEngine

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.types import UtcDateTime, UuidText, strict_json_dumps

__all__ = ["encoder", "existing_rows", "insert_rows", "update_rows"]

Encode = Callable[[Any], Any]


def _pg_type(sa_type: TypeEngine[Any]) -> str:
    """The PostgreSQL type name psycopg's binary COPY needs for a column."""
    checks: Sequence[tuple[type[Any], str]] = (
        (UuidText, "uuid"),
        (UtcDateTime, "timestamptz"),
        (BigInteger, "int8"),
        (Integer, "int4"),
        (Numeric, "numeric"),
        (Text, "text"),
        (String, "varchar"),
    )
    for kind, name in checks:
        if isinstance(sa_type, kind):
            return name
    if isinstance(sa_type, JSON) or "JSON" in type(sa_type).__name__.upper():
        return "jsonb"
    raise TypeError(f"no COPY type for {sa_type!r}")


def _sqlite_ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(sep=" ", timespec="microseconds")


def _is_json(sa_type: TypeEngine[Any]) -> bool:
    return isinstance(sa_type, JSON)


def encoder(table: Table, dialect: Dialect) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """A function turning a row of Python values (table column order) into driver values."""
    converters: list[Encode | None] = []
    for column in table.columns:
        kind = column.type
        if dialect.is_postgresql:
            if _is_json(kind):
                converters.append(Jsonb)
            elif isinstance(kind, Numeric) and not isinstance(kind, Integer):
                converters.append(lambda v: Decimal(repr(v)))
            else:
                converters.append(None)
        elif isinstance(kind, UuidText):
            converters.append(str)
        elif isinstance(kind, UtcDateTime):
            converters.append(_sqlite_ts)
        elif _is_json(kind):
            converters.append(strict_json_dumps)
        else:
            converters.append(None)
    pairs = list(enumerate(converters))
    active = [(i, f) for i, f in pairs if f is not None]

    def encode(row: Sequence[Any]) -> tuple[Any, ...]:
        out = list(row)
        for i, convert in active:
            value = out[i]
            if value is not None:
                out[i] = convert(value)
        return tuple(out)

    return encode


def insert_rows(conn: Connection, table: Table, rows: Iterable[tuple[Any, ...]]) -> None:
    """Insert encoded rows on ``conn`` (inside its transaction) by the dialect's fastest way.

    PostgreSQL: binary COPY; into a table under row-level security for this role (revision
    0003, any role but a superuser or BYPASSRLS one), which COPY FROM refuses, COPY into a
    temporary table and one ``INSERT ... SELECT``, so the policies check every row.

    The columns are the models', so the write order (revision 0007: ``seq`` on PostgreSQL, the
    rowid on SQLite) is never supplied: the database numbers the rows in the order they come.
    The staged ``SELECT`` reads its temporary table in the order it was filled (a plain scan:
    temporary tables are never scanned in parallel or from a synchronised start).
    """
    names = [c.name for c in table.columns]
    if Dialect.of(conn).is_postgresql:
        if not conn.execute(select(func.row_security_active(table.name))).scalar():
            _copy_rows(conn, table, rows)
            return
        stage = _stage_of(table)
        conn.execute(CreateTable(stage))
        _copy_rows(conn, stage, rows)
        conn.execute(table.insert().from_select(names, select(*stage.c)))
        conn.execute(DropTable(stage))
        return
    compiled = str(table.insert().compile(dialect=_SQLITE, column_keys=names))
    conn.exec_driver_sql(compiled, list(rows))


def _copy_rows(conn: Connection, table: Table, rows: Iterable[tuple[Any, ...]]) -> None:
    names = [c.name for c in table.columns]
    dbapi = cast("psycopg.Connection[Any]", conn.connection.dbapi_connection)
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    try:
        with dbapi.cursor() as cursor:
            set_json_dumps(strict_json_dumps, context=cursor)
            with cursor.copy(statement) as copy:
                copy.set_types([_pg_type(c.type) for c in table.columns])
                for row in rows:
                    copy.write_row(row)
    except psycopg.IntegrityError as exc:
        # The type every other write raises: callers retry a duplicate key (23505) on it.
        raise IntegrityError(f"COPY {table.name}", None, exc) from exc
    except psycopg.DataError as exc:
        raise DataError(f"COPY {table.name}", None, exc) from exc
    except psycopg.Error as exc:
        # COPY runs on the raw driver connection, so SQLAlchemy has not seen this error: give it
        # the type (and, for a lost connection, the invalidation) every other write has, so the
        # pool drops the dead connection and the store's retry sees what happened.
        lost = dbapi.broken or dbapi.closed
        if lost:
            conn.invalidate(exc)
        raise DBAPIError.instance(
            f"COPY {table.name}", None, exc, psycopg.Error, connection_invalidated=lost
        ) from exc


def _stage_of(table: Table) -> Table:
    """A temporary table with ``table``'s columns and no constraints (dropped by the caller)."""
    return Table(
        f"_miyabi_stage_{table.name}",
        MetaData(),
        *(Column(c.name, c.type) for c in table.columns),
        prefixes=["TEMPORARY"],
    )


_SQLITE: Final = sqlite.dialect(paramstyle="qmark")


def update_rows(
    conn: Connection, table: Table, rows: Sequence[tuple[Any, ...]], columns: Sequence[str]
) -> None:
    """Overwrite ``columns`` of stored rows (matched by id) with encoded full rows.

    PostgreSQL: COPY into a temporary table, then one ``UPDATE ... FROM``; SQLite: executemany.
    """
    if Dialect.of(conn).is_postgresql:
        stage = _stage_of(table)
        conn.execute(CreateTable(stage))
        _copy_rows(conn, stage, rows)
        conn.execute(
            table.update()
            .where(table.c.id == stage.c.id)
            .values({name: stage.c[name] for name in columns})
        )
        conn.execute(DropTable(stage))
        return
    statement = (
        table.update()
        .where(table.c.id == bindparam("key_id"))
        .values({name: bindparam(f"new_{name}") for name in columns})
        .compile(dialect=_SQLITE)
    )
    position = {f"new_{c.name}": i for i, c in enumerate(table.columns)}
    position["key_id"] = position["new_id"]
    order = [position[name] for name in statement.positiontup or ()]
    conn.exec_driver_sql(str(statement), [tuple(row[i] for i in order) for row in rows])


def existing_rows(
    conn: Connection, table: Table, ids: Sequence[uuid.UUID], columns: Sequence[str]
) -> dict[uuid.UUID, Any]:
    """Stored rows among ``ids`` (one bound parameter however many), locked on PostgreSQL."""
    if not ids:
        return {}
    wanted = [table.c.id, *(table.c[name] for name in columns)]
    if Dialect.of(conn).is_postgresql:
        # A join against unnest(): a hash or index join whatever the planner believes about the
        # table's size (``id = ANY(array)`` can turn into a scan comparing every row to every id).
        keys = (
            func.unnest(bindparam("ids", list(ids), type_=ARRAY(PG_UUID())))
            .table_valued("key_id")
            .render_derived(name="keys")
        )
        stmt = (
            select(*wanted)
            .select_from(table.join(keys, table.c.id == keys.c.key_id))
            .with_for_update(of=table)
        )
    else:
        listed = func.json_each(bindparam("ids", json.dumps([str(i) for i in ids]))).table_valued(
            "value"
        )
        stmt = select(*wanted).where(table.c.id.in_(select(listed.c.value)))
    return {row[0]: row for row in conn.execute(stmt)}

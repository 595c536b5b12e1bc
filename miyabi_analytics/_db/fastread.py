"""Stream query results as Arrow record batches, by the fastest way each database offers.

PostgreSQL: ADBC (the libpq-based Arrow driver), with uuids cast to text and numerics to double
in SQL, which was measured the fastest way from the server into pandas (BASELINES.md). SQLite: the
raw sqlite3 rows with no per-value SQLAlchemy processing, turned into Arrow arrays column by
column. Either way the batches have exactly the schema asked for.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, suppress
from typing import Any, Final

import pyarrow as pa
from sqlalchemy import (
    Connection,
    Engine,
    Float,
    Select,
    String,
    Text,
    cast,
    type_coerce,
)
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.sql.elements import ColumnElement

from miyabi_analytics._db.scope import SCOPE_SETTING, session_scope
from miyabi_analytics._db.tx import begin
from miyabi_analytics._db.types import UtcDateTime, UuidText

__all__ = ["record_batches", "select_for_arrow"]

DEFAULT_CHUNK: Final = 100_000
_PG_NUMERIC_DOLLAR: Final = PGDialect_psycopg(  # type: ignore[no-untyped-call]
    paramstyle="numeric_dollar"
)


def select_for_arrow(
    dialect_name: str, columns: Mapping[str, ColumnElement[Any]], arrow_types: Mapping[str, Any]
) -> list[ColumnElement[Any]]:
    """Output columns shaped so the driver hands back Arrow-friendly values cheaply."""
    out: list[ColumnElement[Any]] = []
    for name, column in columns.items():
        kind = arrow_types[name]
        if dialect_name == "postgresql":
            if isinstance(column.type, UuidText) or (
                pa.types.is_string(kind) and not isinstance(column.type, String)
            ):
                expr: ColumnElement[Any] = cast(column, Text)
            elif pa.types.is_floating(kind):
                expr = cast(column, Float(53))
            else:
                expr = column
        elif isinstance(column.type, UuidText | UtcDateTime) or pa.types.is_string(kind):
            expr = type_coerce(column, String)  # raw text, no per-value result processing
        else:
            expr = type_coerce(column, column.type.__class__())
        out.append(expr.label(name))
    return out


def record_batches(
    bind: Engine | Connection, stmt: Select[Any], schema: pa.Schema, chunksize: int = DEFAULT_CHUNK
) -> Iterator[pa.RecordBatch]:
    """Run ``stmt`` and yield its rows as record batches of ``schema`` (at most ``chunksize``)."""
    if isinstance(bind, Engine) and bind.dialect.name == "postgresql":
        yield from _pg_batches(bind, stmt, schema, chunksize)
    else:
        yield from _row_batches(bind, stmt, schema, chunksize)


def _pg_batches(
    engine: Engine, stmt: Select[Any], schema: pa.Schema, chunksize: int
) -> Iterator[pa.RecordBatch]:
    compiled = stmt.compile(dialect=_PG_NUMERIC_DOLLAR, compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    values = [_adbc_value(params[name]) for name in compiled.positiontup or ()]
    uri = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    # ADBC opens a connection of its own, which the engine's hooks never see: it gets the
    # repository scope a transaction of the engine runs with (connect(repository_ids=...)).
    scope = session_scope(engine)
    pending: list[pa.RecordBatch] = []
    size = 0
    for batch in _prefetched(_adbc_fetch, uri, str(compiled), values, scope):
        pending.append(batch)
        size += batch.num_rows
        while size >= chunksize:
            table = pa.Table.from_batches(pending)
            yield _conform(table.slice(0, chunksize), schema)
            rest = table.slice(chunksize)
            pending, size = rest.to_batches(), rest.num_rows
    if size:
        yield _conform(pa.Table.from_batches(pending), schema)


def _adbc_fetch(
    uri: str, query: str, values: list[Any], scope: str | None
) -> Iterator[pa.RecordBatch]:
    import adbc_driver_postgresql.dbapi as adbc

    with closing(adbc.connect(uri)) as conn, closing(conn.cursor()) as cursor:
        if scope is not None:
            # For the session, not the transaction: the connection is this query's alone and
            # closed right after, and the scope must hold whatever ADBC's autocommit mode is.
            cursor.execute("SELECT set_config($1, $2, false)", [SCOPE_SETTING, scope])
            cursor.fetchall()
        cursor.execute(query, values or None)
        yield from cursor.fetch_record_batch()


_DONE: Final = object()


def _prefetched(produce: Any, *args: Any, depth: int = 4) -> Iterator[Any]:
    """Iterate ``produce(*args)`` in a thread; errors are re-raised in the caller.

    Fetching (the driver releases the GIL) then overlaps with the caller's conversion of the
    batches already fetched.
    """
    items: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def run() -> None:
        try:
            for item in produce(*args):
                while not stop.is_set():
                    try:
                        items.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put(_DONE)
        except BaseException as exc:  # handed to the consumer, never swallowed
            items.put(exc)

    worker = threading.Thread(target=run, name="miyabi-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():
            with suppress(queue.Empty):
                items.get_nowait()
            worker.join(timeout=0.05)


def _adbc_value(value: Any) -> Any:
    import uuid

    return str(value) if isinstance(value, uuid.UUID) else value


def _conform(table: pa.Table, schema: pa.Schema) -> pa.RecordBatch:
    arrays = [table.column(i).cast(field.type) for i, field in enumerate(schema)]
    combined = pa.Table.from_arrays(arrays, schema=schema).combine_chunks()
    batches = combined.to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=schema)


def _row_batches(
    bind: Engine | Connection, stmt: Select[Any], schema: pa.Schema, chunksize: int
) -> Iterator[pa.RecordBatch]:
    with begin(bind) as conn:
        result = conn.execute(stmt)
        # The output columns carry no result processing (select_for_arrow), so the driver's
        # own tuples are the values: skip building a Row object per row.
        cursor = result.cursor
        assert cursor is not None
        try:
            while rows := cursor.fetchmany(chunksize):
                yield _batch_from_rows(rows, schema)
        finally:
            result.close()


def _batch_from_rows(rows: Sequence[Sequence[Any]], schema: pa.Schema) -> pa.RecordBatch:
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    arrays = []
    for field, values in zip(schema, columns, strict=True):
        first = next((v for v in values if v is not None), None)
        if pa.types.is_timestamp(field.type) and isinstance(first, str):
            arrays.append(pa.array(values, pa.string()).cast(field.type))
        else:
            arrays.append(pa.array(values, field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)

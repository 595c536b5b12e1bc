"""Stream query results as Arrow record batches, by the fastest way each database offers.

PostgreSQL: ADBC (the libpq-based Arrow driver), with numerics cast to double in SQL and uuids
either cast to text or (for a caller that formats them itself, :data:`UUID_BYTES`) sent as
their 16 bytes: measured the fastest way from the server into pandas (BASELINES.md). SQLite:
a whole read of a database file goes through ADBC's SQLite driver (typed, see
:func:`_sqlite_batches`); streamed or in-transaction reads take the raw sqlite3 rows, with no
per-value SQLAlchemy processing, turned into Arrow arrays column by column. Either way the
batches have exactly the schema asked for.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager, suppress
from typing import Any, Final

import numpy as np
import pyarrow as pa
from sqlalchemy import (
    Connection,
    Engine,
    Float,
    Integer,
    Select,
    String,
    Text,
    cast,
    literal,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ColumnElement

from miyabi_analytics._db.engine import libpq_conninfo
from miyabi_analytics._db.scope import SCOPE_SETTING, session_scope
from miyabi_analytics._db.tx import begin
from miyabi_analytics._db.types import UtcDateTime, UuidText

__all__ = ["UUID_BYTES", "record_batches", "select_for_arrow", "uuid_text"]

DEFAULT_CHUNK: Final = 100_000
_PG_NUMERIC_DOLLAR: Final = PGDialect_psycopg(  # type: ignore[no-untyped-call]
    paramstyle="numeric_dollar"
)


UUID_BYTES: Final = pa.binary(16)
"""The wire type of a uuid read as its 16 bytes (PostgreSQL): :func:`uuid_text` makes text."""


def select_for_arrow(
    dialect_name: str, columns: Mapping[str, ColumnElement[Any]], arrow_types: Mapping[str, Any]
) -> list[ColumnElement[Any]]:
    """Output columns shaped so the driver hands back Arrow-friendly values cheaply.

    On PostgreSQL a uuid asked as :data:`UUID_BYTES` is sent as it is stored: formatting
    3M uuids as text costs the server more (0.8 s on a 1M-row read) than the client's
    vectorised :func:`uuid_text`.
    """
    out: list[ColumnElement[Any]] = []
    for name, column in columns.items():
        kind = arrow_types[name]
        if dialect_name == "postgresql":
            if kind == UUID_BYTES:
                expr: ColumnElement[Any] = column
            elif isinstance(column.type, UuidText) or (
                pa.types.is_string(kind) and not isinstance(column.type, String)
            ):
                expr = cast(column, Text)
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
    bind: Engine | Connection,
    stmt: Select[Any],
    schema: pa.Schema,
    chunksize: int | None = DEFAULT_CHUNK,
) -> Iterator[pa.RecordBatch]:
    """Run ``stmt`` and yield its rows as record batches of ``schema`` (at most ``chunksize``).

    ``chunksize=None`` yields the batches as the driver delivers them (no re-chunking copy),
    for a caller that gathers them all anyway (and sorts them itself: on an SQLite file that
    read goes through ADBC, which keeps no order of a compound query).
    """
    if isinstance(bind, Engine):
        if bind.dialect.name == "postgresql":
            yield from _pg_batches(bind, stmt, schema, chunksize)
            return
        path = _sqlite_file(bind) if chunksize is None else None
        if path is not None:
            yield from _sqlite_batches(bind, stmt, schema, path)
            return
    yield from _row_batches(bind, stmt, schema, chunksize)


def _pg_batches(
    engine: Engine, stmt: Select[Any], schema: pa.Schema, chunksize: int | None
) -> Iterator[pa.RecordBatch]:
    compiled = stmt.compile(dialect=_PG_NUMERIC_DOLLAR, compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    values = [_adbc_value(params[name]) for name in compiled.positiontup or ()]
    uri = libpq_conninfo(engine.url)  # a URI would break on a space in the password
    # ADBC opens a connection of its own, which the engine's hooks never see: it gets the
    # repository scope a transaction of the engine runs with (connect(repository_ids=...)).
    scope = session_scope(engine)
    pending: list[pa.RecordBatch] = []
    size = 0
    for batch in _prefetched(_adbc_fetch, uri, str(compiled), values, scope):
        if chunksize is None:
            if batch.num_rows:
                yield _cast(batch, schema)
            continue
        pending.append(batch)
        size += batch.num_rows
        while size >= chunksize:
            table = pa.Table.from_batches(pending)
            yield _conform(table.slice(0, chunksize), schema)
            rest = table.slice(chunksize)
            pending, size = rest.to_batches(), rest.num_rows
    if size:
        yield _conform(pa.Table.from_batches(pending), schema)


@contextmanager
def _driver_errors(query: str, values: list[Any]) -> Iterator[None]:
    """ADBC's errors as SQLAlchemy's DBAPIError, the family every other path raises.

    The driver's exception stays the ``orig`` (with its ``sqlstate``), as SQLAlchemy keeps
    psycopg's; the connection URI never appears in the message.
    """
    import adbc_driver_manager

    try:
        yield
    except adbc_driver_manager.Error as exc:
        raise DBAPIError(query, values, exc) from exc


def _adbc_fetch(
    uri: str, query: str, values: list[Any], scope: str | None
) -> Iterator[pa.RecordBatch]:
    import adbc_driver_postgresql.dbapi as adbc

    with (
        _driver_errors(query, values),
        closing(adbc.connect(uri)) as conn,
        closing(conn.cursor()) as cursor,
    ):
        # This connection runs this one query. JIT compiling it costs more than it saves when
        # every row is streamed out (0.5 s of a 1M-row read, measured); filtered reads are
        # below the JIT cost threshold anyway.
        cursor.execute("SET jit = off")
        # Room to hash the analytics rows of a whole read in memory (82 MB for 770k rows),
        # where the default 4 MB makes the planner hash the executions instead, spilling them
        # to disk in 64 batches: 1.35 s -> 1.05 s of server time on 1M rows (measured).
        cursor.execute("SET work_mem = '64MB'")
        if scope is not None:
            # For the session, not the transaction: the connection is this query's alone and
            # closed right after, and the scope must hold whatever ADBC's autocommit mode is.
            cursor.execute("SELECT set_config($1, $2, false)", [SCOPE_SETTING, scope])
            cursor.fetchall()
        cursor.execute(query, values or None)
        yield from cursor.fetch_record_batch()


def _sqlite_file(engine: Engine) -> str | None:
    """The file of an SQLite engine that another connection can open, else ``None``.

    An in-memory database is private to its connection; a URL with query options (URI
    filenames, read-only modes) is left to the engine's own connections.
    """
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.query:
        return None
    database = url.database
    return database if database and database != ":memory:" else None


# Each column's SQL type for ADBC SQLite, which types a column by the values of its first batch.
_SQLITE_TYPES: Final = {"string": Text, "int64": Integer, "double": Float}
_SENTINELS: Final[dict[str, Any]] = {"string": "", "int64": 0, "double": 0.0}
_SQLITE_BATCH_ROWS: Final = 65_536


def _sqlite_kind(kind: pa.DataType) -> str:
    if pa.types.is_integer(kind):
        return "int64"
    if pa.types.is_floating(kind):
        return "double"
    return "string"  # text, and timestamps as their fixed-width UTC text


def _sqlite_batches(
    engine: Engine, stmt: Select[Any], schema: pa.Schema, path: str
) -> Iterator[pa.RecordBatch]:
    """``stmt`` on the SQLite file ``path`` through ADBC's SQLite driver: no Python objects.

    2x faster than the raw rows on 1M rows (measured). The driver types each column by the
    values of its first batch, and a column whose first batch is all NULL (most error messages
    are) would be typed wrongly: so every value is CAST to its column's type, and a first row
    of typed placeholders (UNION ALL, dropped here) leads the result.
    """
    rows = stmt.subquery("rows")
    kinds = [_sqlite_kind(field.type) for field in schema]
    placeholders: list[ColumnElement[Any]] = [
        cast(literal(_SENTINELS[kind]), _SQLITE_TYPES[kind]).label(field.name)
        for field, kind in zip(schema, kinds, strict=True)
    ]
    typed: list[ColumnElement[Any]] = [
        cast(rows.c[field.name], _SQLITE_TYPES[kind]).label(field.name)
        for field, kind in zip(schema, kinds, strict=True)
    ]
    compiled = select(*placeholders).union_all(select(*typed)).compile(
        dialect=engine.dialect, compile_kwargs={"render_postcompile": True}
    )
    params = compiled.construct_params()
    values = [_sqlite_value(params[name], engine) for name in compiled.positiontup or ()]
    first = True
    for batch in _prefetched(_adbc_sqlite_fetch, path, str(compiled), values):
        if first:
            batch, first = batch.slice(1), False
        if batch.num_rows:
            yield _cast(batch, schema)


def _adbc_sqlite_fetch(path: str, query: str, values: list[Any]) -> Iterator[pa.RecordBatch]:
    import adbc_driver_sqlite.dbapi as adbc_sqlite

    with (
        _driver_errors(query, values),
        closing(adbc_sqlite.connect(path)) as conn,
        closing(conn.cursor()) as cursor,
    ):
        cursor.adbc_statement.set_options(
            **{"adbc.sqlite.query.batch_rows": str(_SQLITE_BATCH_ROWS)}
        )
        cursor.execute(query, values or None)
        yield from cursor.fetch_record_batch()


def _sqlite_value(value: Any, engine: Engine) -> Any:
    """A bound value as the engine would store it: uuids and timestamps as their text."""
    import uuid
    from datetime import datetime

    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return UtcDateTime().process_bind_param(value, engine.dialect)
    return value


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


def _cast(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """The driver's batch with ``schema``'s types and names (int4 widened, metadata dropped)."""
    arrays = [
        _storage(column).cast(field.type)
        for column, field in zip(batch.columns, schema, strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _storage(column: Any) -> Any:
    """An extension array (ADBC's ``arrow.uuid``) as its plain storage (16-byte binary)."""
    return column.storage if isinstance(column, pa.ExtensionArray) else column


# Each byte's two hex digits as one uint16 (in memory order), so a lookup writes both at once.
_HEX: Final = np.frombuffer(b"".join(f"{i:02x}".encode() for i in range(256)), np.uint16)
# The canonical form's groups: (first hex digit, last + 1) -> where they go in the 36 chars.
_GROUPS: Final = ((0, 8, 0), (8, 12, 9), (12, 16, 14), (16, 20, 19), (20, 32, 24))
_UUID_BLOCK: Final = 16_384  # rows per block: 512 KB of scratch


def uuid_text(array: pa.Array) -> pa.Array:
    """16-byte uuids as canonical lowercase text (``8-4-4-4-12``), nulls kept.

    Vectorised with numpy (a lookup table per byte): about 30 ms per million uuids, where
    ``str(uuid.UUID(bytes))`` per value takes over a second. It works a block of rows at a
    time, so its scratch space is small and reused: fresh memory is costly (page faults).
    """
    count = len(array)
    if array.offset:
        array = pa.concat_arrays([array])  # its own buffers, starting at 0
    data = array.buffers()[1]
    raw = np.frombuffer(data, np.uint8, count=count * 16).reshape(count, 16)
    text = np.empty((count, 36), np.uint8)
    text[:, [at - 1 for _, _, at in _GROUPS[1:]]] = ord("-")
    digits = np.empty((min(count, _UUID_BLOCK), 16), np.uint16)
    for start in range(0, count, _UUID_BLOCK):
        block = raw[start : start + _UUID_BLOCK]
        rows = len(block)
        chars = np.take(_HEX, block, out=digits[:rows]).view(np.uint8)
        for first, end, at in _GROUPS:
            text[start : start + rows, at : at + end - first] = chars[:, first:end]
    offsets = np.arange(0, 36 * (count + 1), 36, dtype=np.int32)
    validity = array.is_valid().buffers()[1] if array.null_count else None
    return pa.StringArray.from_buffers(
        count, pa.py_buffer(offsets), pa.py_buffer(text), validity, array.null_count
    )


def _conform(table: pa.Table, schema: pa.Schema) -> pa.RecordBatch:
    """A slice of the driver's batches as one batch of ``schema`` (see :func:`_cast`)."""
    batches = table.combine_chunks().to_batches()
    return _cast(batches[0], schema) if batches else pa.RecordBatch.from_pylist([], schema=schema)


def _row_batches(
    bind: Engine | Connection, stmt: Select[Any], schema: pa.Schema, chunksize: int | None
) -> Iterator[pa.RecordBatch]:
    chunksize = chunksize or DEFAULT_CHUNK
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

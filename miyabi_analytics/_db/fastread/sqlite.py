"""Whole reads of an SQLite file through ADBC's SQLite driver, in a short-lived child process.

``adbc-driver-sqlite`` carries a copy of SQLite of its own, and two copies of SQLite must
never open one file in one process: POSIX locks belong to the process, so each copy takes the
other's locks for its own. A driver connection closing beside Python's ``sqlite3`` thought
itself the last one, checkpointed and deleted the WAL that ``sqlite3`` still wrote to: later
commits went to an unlinked file, unseen by every other connection and lost if the process
died (see :mod:`miyabi_analytics._db.fastread.sqlite_child`). In a process of its own the
driver is one more SQLite client, which SQLite's locking serves as designed.

The child costs a process start and its imports (0.1-0.3 s), so it serves only reads of at
least :data:`PROCESS_ROWS` rows, counted first (the matching executions, the count capped
there: 0.01-0.07 s on 1M executions, a scan of them for a filter no index serves, as the read
itself); smaller reads take the raw ``sqlite3`` rows here. Measured with
``benchmarks/bench_reads.py --sizes`` on 1M executions, on a busy 2-core machine: the child
took 1.7x the time of the raw rows at 2,000 rows, 1.1-1.4x at 5,000-10,000, 0.83-0.90x from
25,000 to 200,000, and 0.90x (1.23x against 1.37x the ``sqlite3`` CLI) on the whole million.

The rows come back as an Arrow IPC stream over a pipe; the child is killed if the reader stops
early or fails, and its error comes back as the DBAPIError the engine's own connection would
raise (the driver's class and message, never a URL).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Generator, Iterator
from contextlib import closing, suppress
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Final

import pyarrow as pa
from sqlalchemy import Engine, Float, Integer, Select, Text, cast, func, literal, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ColumnElement

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.fastread import sqlite_child
from miyabi_analytics._db.fastread.rows import cast_batch, prefetched, row_batches
from miyabi_analytics._db.fastread.source import BatchRead
from miyabi_analytics._db.tx import begin
from miyabi_analytics._db.types import UtcDateTime

__all__ = ["PROCESS_ROWS", "SqliteFileBatches", "sqlite_batches", "sqlite_file"]

PROCESS_ROWS: Final = 25_000
"""Reads of fewer rows than this stay in this process (see the module's docstring)."""
BATCH_ROWS: Final = 65_536
"""Rows per batch the child sends."""
_PIPE_BYTES: Final = 1 << 20

_CHILD: Final = Path(sqlite_child.__file__)

# Each column's SQL type for ADBC SQLite, which types a column by the values of its first batch.
_SQLITE_TYPES: Final = {"string": Text, "int64": Integer, "double": Float}
_SENTINELS: Final[dict[str, Any]] = {"string": "", "int64": 0, "double": 0.0}


def sqlite_file(engine: Engine) -> str | None:
    """The file of an SQLite engine that another process can open, else ``None``.

    An in-memory database is private to its connection; a URL with query options (URI
    filenames, read-only modes) is left to the engine's own connections.
    """
    url = engine.url
    if url.get_backend_name() != Dialect.SQLITE or url.query or not sys.executable:
        return None
    database = url.database
    if not database or database == ":memory:" or not _CHILD.is_file():
        return None
    return database


class SqliteFileBatches:
    """Whole reads of the SQLite file ``path``: the child process for large ones."""

    def __init__(self, engine: Engine, path: str) -> None:
        self._engine, self._path = engine, path

    def batches(self, read: BatchRead) -> Iterator[pa.RecordBatch]:
        """All of ``read``'s rows, unordered, as the driver delivers them (no ``chunksize``)."""
        return sqlite_batches(self._engine, read.stmt, read.schema, self._path, read.rows)


def sqlite_batches(
    engine: Engine, stmt: Select[Any], schema: pa.Schema, path: str, rows: Select[Any] | None
) -> Iterator[pa.RecordBatch]:
    """All of ``stmt``'s rows from the file ``path``, unordered, as batches of ``schema``.

    ``rows`` selects one row per row of ``stmt``, more cheaply (``None``: ``stmt`` itself);
    they are counted, up to :data:`PROCESS_ROWS`, to choose the way.
    """
    counted = select(func.count()).select_from(
        (stmt if rows is None else rows).limit(PROCESS_ROWS).subquery()
    )
    with begin(engine) as conn:
        many = conn.execute(counted).scalar_one() >= PROCESS_ROWS
    if not many:
        yield from row_batches(engine, stmt, schema, None)
        return
    query, values = _typed_query(engine, stmt, schema)
    first = True
    with closing(_child_batches(path, query, values)) as batches:
        for batch in batches:
            if first:
                batch, first = batch.slice(1), False
            if batch.num_rows:
                yield cast_batch(batch, schema)


def _kind(kind: pa.DataType) -> str:
    if pa.types.is_integer(kind):
        return "int64"
    if pa.types.is_floating(kind):
        return "double"
    return "string"  # text, and timestamps as their fixed-width UTC text


def _typed_query(
    engine: Engine, stmt: Select[Any], schema: pa.Schema
) -> tuple[str, list[Any]]:
    """``stmt`` as the driver needs it, with its bound values as the engine stores them.

    The driver types each column by the values of its first batch, and a column whose first
    batch is all NULL (most error messages are) would be typed wrongly: so every value is CAST
    to its column's type, and a first row of typed placeholders (UNION ALL, dropped by the
    caller) leads the result.
    """
    inner = stmt.subquery("rows")
    kinds = [_kind(f.type) for f in schema]
    placeholders: list[ColumnElement[Any]] = [
        cast(literal(_SENTINELS[kind]), _SQLITE_TYPES[kind]).label(f.name)
        for f, kind in zip(schema, kinds, strict=True)
    ]
    typed: list[ColumnElement[Any]] = [
        cast(inner.c[f.name], _SQLITE_TYPES[kind]).label(f.name)
        for f, kind in zip(schema, kinds, strict=True)
    ]
    compiled = select(*placeholders).union_all(select(*typed)).compile(
        dialect=engine.dialect, compile_kwargs={"render_postcompile": True}
    )
    params = compiled.construct_params()
    values = [_stored(params[name], engine) for name in compiled.positiontup or ()]
    return str(compiled), values


def _stored(value: Any, engine: Engine) -> Any:
    """A bound value as the engine would store it: uuids and timestamps as their text."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return UtcDateTime().process_bind_param(value, engine.dialect)
    return value


def _child_batches(
    path: str, query: str, values: list[Any]
) -> Generator[pa.RecordBatch, None, None]:
    """The driver's batches for ``query``, read by a child process; killed if left early."""
    request = {"path": path, "query": query, "values": values, "batch_rows": BATCH_ROWS}
    with tempfile.TemporaryFile() as errors:  # a file, so the child never blocks on it
        child = subprocess.Popen(
            [sys.executable, "-P", str(_CHILD)],  # -P: nothing of the working directory
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
        )
        assert child.stdin is not None
        assert child.stdout is not None
        _widen(child.stdout)
        batches = prefetched(_ipc_batches, child.stdout)
        try:
            try:
                with child.stdin:
                    child.stdin.write(json.dumps(request).encode())
            except BrokenPipeError:
                pass  # it stopped at once; its status and errors say why
            try:
                # Not ``yield from``: that would close the fetch before the child is killed.
                for batch in batches:  # noqa: UP028
                    yield batch
            except pa.ArrowException as exc:  # a stream cut short: the child failed
                raise _failure(child.wait(), errors, query, values) from exc
            status = child.wait()
            if status:
                raise _failure(status, errors, query, values)
        finally:
            if child.poll() is None:
                child.kill()  # first, so a fetch blocked on the pipe ends
            batches.close()
            child.wait()
            child.stdout.close()


def _widen(pipe: IO[bytes]) -> None:
    """Give the pipe 1 MB (Linux; 64 KB by default): fewer switches between the processes."""
    with suppress(ImportError, AttributeError, OSError):  # another system, a lower limit
        import fcntl

        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)


def _ipc_batches(stream: IO[bytes]) -> Generator[pa.RecordBatch, None, None]:
    reader = pa.ipc.open_stream(stream)
    try:
        yield from reader
    finally:
        reader.close()


def _failure(status: int, errors: IO[bytes], query: str, values: list[Any]) -> DBAPIError:
    """The child's failure as the DBAPIError an ``sqlite3`` connection would have raised."""
    errors.seek(0)
    lines = errors.read().decode("utf-8", "replace").strip().splitlines()
    kind, message = "OperationalError", f"the SQLite read process failed (exit status {status})"
    try:
        report = json.loads(lines[-1])
        kind, message = str(report["error"]), str(report["message"])
    except (IndexError, ValueError, KeyError, TypeError):
        if lines:
            message = f"{message}: {lines[-1]}"
    error_class = getattr(sqlite3, kind, None)
    if not (isinstance(error_class, type) and issubclass(error_class, sqlite3.Error)):
        error_class = sqlite3.DatabaseError
    error = DBAPIError.instance(query, values, error_class(message), sqlite3.Error)
    assert isinstance(error, DBAPIError)  # orig is a DB-API error, so never a StatementError
    return error

"""Stream query results as Arrow record batches, by the fastest safe way each database offers.

Every way is a :class:`BatchSource`; :func:`record_batches` picks one per read:

- PostgreSQL (:mod:`.postgres`): ADBC (the libpq-based Arrow driver) on a session like the
  engine's own;
- SQLite (:mod:`.sqlite`): a large whole read of a file through ADBC's SQLite driver in a
  child process (never beside Python's ``sqlite3`` in this one);
- everything else (:mod:`.rows`): smaller, streamed and in-transaction reads take the raw
  DB-API rows, with no per-value SQLAlchemy processing, turned into Arrow column by column.

Either way the batches have exactly the schema asked for, with the SELECT's columns shaped by
:func:`~.wire.select_for_arrow`.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pyarrow as pa
from sqlalchemy import Connection, Engine, Select

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.fastread.postgres import PostgresBatches
from miyabi_analytics._db.fastread.rows import DEFAULT_CHUNK, UUID_BYTES, RowBatches
from miyabi_analytics._db.fastread.source import BatchRead, BatchSource
from miyabi_analytics._db.fastread.sqlite import SqliteFileBatches, sqlite_file
from miyabi_analytics._db.fastread.wire import select_for_arrow, uuid_text

__all__ = [
    "DEFAULT_CHUNK",
    "UUID_BYTES",
    "BatchRead",
    "BatchSource",
    "record_batches",
    "select_for_arrow",
    "source_for",
    "uuid_text",
]


def source_for(bind: Engine | Connection, chunksize: int | None) -> BatchSource:
    """The fastest safe way to read from ``bind``.

    A caller's connection (an open transaction) is read through itself; an engine's whole
    read (``chunksize=None``) of an SQLite file may go through the child process.
    """
    if isinstance(bind, Engine):
        if Dialect.of(bind).is_postgresql:
            return PostgresBatches(bind)
        path = sqlite_file(bind) if chunksize is None else None
        if path is not None:
            return SqliteFileBatches(bind, path)
    return RowBatches(bind)


def record_batches(
    bind: Engine | Connection,
    stmt: Select[Any],
    schema: pa.Schema,
    chunksize: int | None = DEFAULT_CHUNK,
    *,
    rows: Select[Any] | None = None,
) -> Generator[pa.RecordBatch, None, None]:
    """Run ``stmt`` and yield its rows as record batches of ``schema`` (at most ``chunksize``).

    ``chunksize=None`` yields the batches as the driver delivers them (no re-chunking copy),
    for a caller that gathers them all anyway (and sorts them itself: a large one on an SQLite
    file goes through ADBC, which keeps no order of a compound query). ``rows``, for such a
    read, selects one row per row of ``stmt`` more cheaply: SQLite counts them to choose its way.
    Nothing runs until the first batch is asked for; closing the generator stops the read.
    """
    yield from source_for(bind, chunksize).batches(BatchRead(stmt, schema, chunksize, rows))

"""Stream query results as Arrow record batches, by the fastest safe way each database offers.

The interface the readers use; one module per database does the work. PostgreSQL
(:mod:`~miyabi_analytics._db.fastread_pg`): ADBC (the libpq-based Arrow driver) on a session
like the engine's own, with numerics cast to double in SQL and uuids either cast to text or
(for a caller that formats them itself, :data:`UUID_BYTES`) sent as their 16 bytes: measured
the fastest way from the server into pandas (BASELINES.md). SQLite
(:mod:`~miyabi_analytics._db.fastread_sqlite`): a large whole read of a file through ADBC's
SQLite driver in a child process (never beside Python's ``sqlite3`` in this one); smaller,
streamed and in-transaction reads take the raw sqlite3 rows, with no per-value SQLAlchemy
processing, turned into Arrow arrays column by column. Either way the batches have exactly the
schema asked for.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any, Final

import numpy as np
import pyarrow as pa
from sqlalchemy import Connection, Engine, Float, Select, String, Text, cast, type_coerce
from sqlalchemy.sql.elements import ColumnElement

from miyabi_analytics._db.batches import DEFAULT_CHUNK, UUID_BYTES, row_batches
from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.fastread_pg import pg_batches
from miyabi_analytics._db.fastread_sqlite import sqlite_batches, sqlite_file
from miyabi_analytics._db.types import UtcDateTime, UuidText

__all__ = ["DEFAULT_CHUNK", "UUID_BYTES", "record_batches", "select_for_arrow", "uuid_text"]


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
        if dialect_name == Dialect.POSTGRESQL:
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
    *,
    rows: Select[Any] | None = None,
) -> Generator[pa.RecordBatch, None, None]:
    """Run ``stmt`` and yield its rows as record batches of ``schema`` (at most ``chunksize``).

    ``chunksize=None`` yields the batches as the driver delivers them (no re-chunking copy),
    for a caller that gathers them all anyway (and sorts them itself: a large one on an SQLite
    file goes through ADBC, which keeps no order of a compound query). ``rows``, for such a
    read, selects one row per row of ``stmt`` more cheaply: SQLite counts them to choose its way.
    """
    if isinstance(bind, Engine):
        if Dialect.of(bind).is_postgresql:
            yield from pg_batches(bind, stmt, schema, chunksize)
            return
        path = sqlite_file(bind) if chunksize is None else None
        if path is not None:
            yield from sqlite_batches(bind, stmt, schema, path, rows)
            return
    yield from row_batches(bind, stmt, schema, chunksize)


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

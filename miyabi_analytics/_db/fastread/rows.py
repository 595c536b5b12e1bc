"""The plain way that works on every connection, and the pieces every fast read shares.

:class:`RowBatches`: the DB-API rows turned into Arrow column by column (:func:`row_batches`).
Shared: a background fetch (:func:`prefetched`), and the driver's batches given the exact
schema asked for (:func:`cast_batch`, :func:`rechunk`).
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import closing, suppress
from typing import Any, Final

import pyarrow as pa
from sqlalchemy import Connection, Engine, Select

from miyabi_analytics._db.fastread.source import BatchRead
from miyabi_analytics._db.tx import begin

__all__ = [
    "DEFAULT_CHUNK",
    "UUID_BYTES",
    "RowBatches",
    "cast_batch",
    "prefetched",
    "rechunk",
    "row_batches",
]

DEFAULT_CHUNK: Final = 100_000

UUID_BYTES: Final = pa.binary(16)
"""The wire type of a uuid read as its 16 bytes (PostgreSQL): ``wire.uuid_text`` makes text."""

_DONE: Final = object()


def prefetched(
    produce: Callable[..., Generator[Any, None, None]], *args: Any, depth: int = 4
) -> Generator[Any, None, None]:
    """Iterate ``produce(*args)`` in a thread; errors are re-raised in the caller.

    Fetching (the drivers release the GIL) then overlaps with the caller's conversion of the
    batches already fetched. Closing this iterator stops the thread and closes ``produce``'s
    iterator there (its ``finally`` blocks run), after at most the item being fetched.
    """
    items: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def run() -> None:
        try:
            with closing(produce(*args)) as source:
                for item in source:
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


def cast_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """The driver's batch with ``schema``'s types and names (int4 widened, metadata dropped)."""
    arrays = [
        _storage(column).cast(field.type)
        for column, field in zip(batch.columns, schema, strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _storage(column: Any) -> Any:
    """An extension array (ADBC's ``arrow.uuid``) as its plain storage (16-byte binary)."""
    return column.storage if isinstance(column, pa.ExtensionArray) else column


def _conform(table: pa.Table, schema: pa.Schema) -> pa.RecordBatch:
    """A slice of the driver's batches as one batch of ``schema`` (see :func:`cast_batch`)."""
    batches = table.combine_chunks().to_batches()
    if not batches:
        return pa.RecordBatch.from_pylist([], schema=schema)
    return cast_batch(batches[0], schema)


def rechunk(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema, chunksize: int | None
) -> Iterator[pa.RecordBatch]:
    """The driver's batches as batches of ``schema`` of ``chunksize`` rows (the last fewer).

    ``chunksize=None`` keeps the driver's batches as they come (no re-chunking copy), empty
    ones left out.
    """
    pending: list[pa.RecordBatch] = []
    size = 0
    for batch in batches:
        if chunksize is None:
            if batch.num_rows:
                yield cast_batch(batch, schema)
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


class RowBatches:
    """Reads through ``bind`` itself: an engine's pooled connection, or the caller's."""

    def __init__(self, bind: Engine | Connection) -> None:
        self._bind = bind

    def batches(self, read: BatchRead) -> Iterator[pa.RecordBatch]:
        """``read``'s rows, in ``chunksize`` batches (``rows`` is not needed here)."""
        return row_batches(self._bind, read.stmt, read.schema, read.chunksize)


def row_batches(
    bind: Engine | Connection,
    stmt: Select[Any],
    schema: pa.Schema,
    chunksize: int | None,
    *,
    stream: bool = False,
) -> Iterator[pa.RecordBatch]:
    """``stmt`` run on ``bind`` itself, its DB-API rows as batches of ``schema``.

    The output columns carry no result processing (``wire.select_for_arrow``), so the
    driver's own tuples are the values: no Row object is built per row. ``stream=True`` reads
    through a server-side cursor (PostgreSQL), so memory stays flat on a large result; its
    rows go through SQLAlchemy's Result, which holds the first ones in a buffer of its own.
    """
    chunksize = chunksize or DEFAULT_CHUNK
    with begin(bind) as conn:
        if stream:
            options = {"stream_results": True, "yield_per": chunksize}
            with conn.execution_options(**options).execute(stmt) as streamed:
                for rows in streamed.partitions():
                    yield _batch_from_rows(rows, schema)
            return
        result = conn.execute(stmt)
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
        elif field.type == UUID_BYTES and isinstance(first, uuid.UUID | str):
            arrays.append(pa.array([None if v is None else _uuid(v).bytes for v in values],
                                   UUID_BYTES))
        else:
            arrays.append(pa.array(values, field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)

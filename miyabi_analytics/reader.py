"""Read the summary view and the logs into pandas DataFrames, filtered in SQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Engine, Select, select

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.expressions import write_order
from miyabi_analytics._db.fastread import (
    DEFAULT_CHUNK,
    UUID_BYTES,
    record_batches,
    select_for_arrow,
    uuid_text,
)
from miyabi_analytics._db.schema import analytics, executions, logs
from miyabi_analytics._db.tx import begin
from miyabi_analytics._db.types import UuidText
from miyabi_analytics._db.views import TYPED_METRICS, summary
from miyabi_analytics._validate import INT32_MAX, as_int, as_uuid, as_window
from miyabi_analytics.errors import ValidationError
from miyabi_analytics.filters import SummaryFilters
from miyabi_analytics.frames import (
    LOG_DTYPES,
    SUMMARY_DTYPES,
    arrow_schema,
    convert_piece,
    from_arrow,
    is_converted,
    join_pieces,
    paused_gc,
    to_frame,
)
from miyabi_analytics.vocabulary import AGENT_TYPES, agent_category, check_log_level

__all__ = [
    "export_summary",
    "iter_summary",
    "read_logs",
    "read_summary",
    "read_summary_arrow",
    "read_summary_simple",
    "summary_columns",
]


def summary_columns(columns: object) -> dict[str, Any]:
    """The dtype spec of the asked columns, in the asked order; unknown names are refused."""
    if columns is None:
        return dict(SUMMARY_DTYPES)
    if isinstance(columns, str):
        columns = [columns]
    if not isinstance(columns, Iterable) or not all(isinstance(c, str) for c in columns):
        raise ValidationError("columns", columns, "expected column names (strings)")
    chosen = list(dict.fromkeys(columns))
    unknown = [c for c in chosen if c not in SUMMARY_DTYPES]
    if unknown or not chosen:
        raise ValidationError(
            "columns", unknown or columns, f"expected names from {', '.join(SUMMARY_DTYPES)}"
        )
    return {c: SUMMARY_DTYPES[c] for c in chosen}


FilterArg = Any


# read_summary's order: start (never started last), then creation, then id. The database sorts
# by them for the streaming readers, Arrow for the whole reads (created_at and id are never NULL).
_ORDER_KEYS: Final = ("started_at", "created_at", "id")


def _summary_select(
    dialect_name: str,
    spec: Mapping[str, Any],
    filters: SummaryFilters,
    *,
    wire: pa.Schema | None,
    ordered: bool = True,
    tables: bool = False,
) -> Select[Any]:
    """``spec``'s columns of the view, filtered; shaped for Arrow as ``wire`` unless ``None``.

    ``tables=True`` reads the view's tables instead (see :data:`_TABLE_COLUMNS`): every
    analytics row of an execution, not only the latest, with its :data:`_LATEST` keys.
    """
    source: Any = summary
    columns = {name: (_TABLE_COLUMNS if tables else summary.c)[name] for name in spec}
    if tables:
        joined = any(column.table is analytics for column in columns.values())
        on = analytics.c.execution_id == executions.c.id
        source = executions.outerjoin(analytics, on) if joined else executions
    outputs = (
        list(columns.values())
        if wire is None
        else select_for_arrow(dialect_name, columns, {f.name: f.type for f in wire})
    )
    filtered = executions.c if tables else summary.c
    stmt = filters.apply(select(*outputs).select_from(source), filtered)
    if not ordered:
        return stmt
    return stmt.order_by(*(summary.c[key].asc().nulls_last() for key in _ORDER_KEYS))


def _ordered_batches(
    bind: Engine | Connection,
    spec: Mapping[str, Any],
    filter_args: Mapping[str, Any],
    chunksize: int,
) -> Iterator[pa.RecordBatch]:
    """``spec``'s columns in read_summary's order, sorted by the database, in ``chunksize``s.

    For the streaming readers (:func:`iter_summary`, :func:`export_summary`), which cannot sort
    what they have not seen yet.
    """
    filters = SummaryFilters.build(**filter_args)
    schema = arrow_schema(spec)
    stmt = _summary_select(bind.dialect.name, spec, filters, wire=schema)
    return record_batches(bind, stmt, schema, chunksize)


def _wire_schema(dialect_name: str, spec: Mapping[str, Any]) -> pa.Schema:
    """:func:`arrow_schema`, with uuids as their 16 bytes on PostgreSQL (see select_for_arrow)."""
    schema = arrow_schema(spec)
    if dialect_name != Dialect.POSTGRESQL:
        return schema
    return pa.schema([
        pa.field(f.name, UUID_BYTES)
        if isinstance(_TABLE_COLUMNS.get(f.name, summary.c.get(f.name)).type, UuidText)
        else f
        for f in schema
    ])


# Whole reads on PostgreSQL join every analytics row and keep each execution's latest one
# themselves: the view's anti-join ("no later row exists") costs the server as much CPU as the
# rest of the read (a parallel plan of 2.7 CPU-s against 1.05 s on one core for the plain join
# with the ADBC session's work_mem, measured), while the client sorts the rows anyway, and an
# execution's rows then sit side by side with its latest first (:data:`_LATEST` descending:
# the view's rule, latest created_at, then last written). One statement, so one snapshot, as
# the view; the same policies (the view is security_invoker). The keys are fetched, never
# returned. tests/db/test_fastpaths.py holds the result to the view's.
_LATEST: Final = ("_latest_created_at", "_latest_write_order")
_TABLE_COLUMNS: Final[Mapping[str, Any]] = {
    **{name: executions.c[name] for name in SUMMARY_DTYPES if name in executions.c},
    **{name: analytics.c[name] for name in TYPED_METRICS},
    _LATEST[0]: analytics.c.created_at,
    _LATEST[1]: write_order(analytics),
}
_LATEST_DTYPES: Final = {_LATEST[0]: SUMMARY_DTYPES["created_at"], _LATEST[1]: "Int64"}


def _scattered_ints(column: pa.ChunkedArray, slots: Any, count: int) -> Any:
    """An int64 column as a pandas ``Int64`` array of ``count`` rows, row ``i`` at ``slots[i]``."""
    values = np.empty(count + 1, np.int64)  # slot ``count``: the rows left out
    missing = np.empty(count + 1, np.bool_)
    start = 0
    for chunk in column.chunks:
        end = start + len(chunk)
        where = slots[start:end]
        values[where] = chunk.fill_null(0).to_numpy()
        missing[where] = chunk.is_null().to_numpy(zero_copy_only=False)
        start = end
    return pd.arrays.IntegerArray(values[:count], missing[:count])


def _first_of_each(ids: pa.ChunkedArray, order: pa.Array) -> tuple[pa.Array, pa.Array]:
    """``order`` without the rows repeating the id before them, and the ids in that order.

    ``ids`` are 16-byte uuids; the sorted ids are the read's id column, so it is not taken twice.
    """
    sorted_ids = ids.take(order).combine_chunks()
    count = len(sorted_ids)
    halves = np.frombuffer(sorted_ids.buffers()[1], np.uint64, count=2 * count).reshape(count, 2)
    repeats = (halves[1:] == halves[:-1]).all(axis=1)
    if not repeats.any():
        return order, sorted_ids
    keep = pa.array(np.concatenate([[True], ~repeats]))
    return order.filter(keep), sorted_ids.filter(keep)


# The view's computed columns, made client-side from columns fetched anyway, with the view's
# definitions: the server's category CASE and numeric EXTRACT cost 0.45 s of a 1M-row read
# (measured), Arrow a few milliseconds. tests/db/test_fastpaths.py holds them to the view's.
_DERIVED: Final[Mapping[str, tuple[str, ...]]] = {
    "agent_category": ("agent_type",),
    "duration_seconds": ("started_at", "completed_at"),
}
_TYPE_NAMES: Final = pa.array(AGENT_TYPES, pa.string())
_CATEGORY_OF_TYPE: Final = pa.array([agent_category(t) for t in AGENT_TYPES], pa.string())
_EXACT_MICROS: Final = 2**53  # below it a count of microseconds is an exact double


def _with_derived(batch: pa.RecordBatch, names: Sequence[str], schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with the derived columns ``names`` appended (``schema``: the result's)."""
    if not names:
        return batch
    arrays = list(batch.columns)
    for name in names:
        if name == "agent_category":
            index = pc.index_in(batch.column("agent_type"), value_set=_TYPE_NAMES)
            arrays.append(pc.take(_CATEGORY_OF_TYPE, index))  # unknown type: NULL, as the view
        else:
            started, completed = batch.column("started_at"), batch.column("completed_at")
            arrays.append(_duration_seconds(started, completed))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _duration_seconds(started: pa.Array, completed: pa.Array) -> pa.Array:
    """``completed - started`` in seconds: the double nearest the exact value, as the view's.

    The microsecond count is exact as a double below 2**53 (285 years), and one IEEE division
    rounds it correctly; a longer span is computed exactly in Python. NULL if either is NULL.
    """
    micros = pc.subtract(completed.cast(pa.int64()), started.cast(pa.int64()))
    seconds = pc.divide(micros.cast(pa.float64(), safe=False), 1_000_000.0)
    longest = pc.max(pc.abs(micros)).as_py()
    if longest is None or longest < _EXACT_MICROS:
        return seconds
    exact = [None if m is None else float(Fraction(m, 1_000_000)) for m in micros.to_pylist()]
    return pa.array(exact, pa.float64())


def _read_sorted(
    bind: Engine | Connection,
    spec: Mapping[str, Any],
    filter_args: Mapping[str, Any],
    *,
    convert: bool,
) -> tuple[pa.Table, dict[str, Any]]:
    """The whole read in read_summary's order: Arrow columns, and (``convert``) the others made.

    The rows come unordered; categories become codes and JSON documents are parsed batch by
    batch as they arrive, so their text goes with its batch. Then the rows are sorted
    client-side: with uuids as 16 bytes, reordering the columns is cheap, where the server's
    sort of a million wide rows costs more (measured).
    """
    filters = SummaryFilters.build(**filter_args)
    derived = [name for name in _DERIVED if name in spec]
    needed = [*_ORDER_KEYS, *(source for name in derived for source in _DERIVED[name])]
    fetch = {k: v for k, v in spec.items() if k not in _DERIVED}
    fetch |= {k: SUMMARY_DTYPES[k] for k in needed if k not in fetch}
    tables = Dialect.of(bind).is_postgresql
    latest = tables and any(name in TYPED_METRICS for name in fetch)
    if latest:
        fetch |= _LATEST_DTYPES
    wire = _wire_schema(bind.dialect.name, fetch)
    special = {n: d for n, d in spec.items() if is_converted(d)} if convert else {}
    stmt = _summary_select(
        bind.dialect.name, fetch, filters, wire=wire, ordered=False, tables=tables
    )
    full = pa.schema([*wire, *arrow_schema({name: SUMMARY_DTYPES[name] for name in derived})])
    # One row per execution, as the view has: what a read of an SQLite file counts to choose
    # between its own rows and a process of ADBC's (see _db/fastread_sqlite.py).
    rows = filters.apply(select(executions.c.id), executions.c)

    pieces: dict[str, list[Any]] = {name: [] for name in special}
    plain: list[pa.RecordBatch] = []
    with (
        paused_gc(),  # the documents are a million containers, none of them garbage
        # Closed on the way out, even through an error: a fetch still running (a child
        # process, a server cursor) stops here, not whenever the traceback is dropped.
        closing(record_batches(bind, stmt, wire, None, rows=rows)) as fetches,
    ):
        for fetched in fetches:
            batch = _with_derived(fetched, derived, full)
            for name, dtype in special.items():
                pieces[name].append(convert_piece(batch.column(name), dtype))
            kept = batch.drop_columns(list(special)) if special else batch
            # Copied out of the driver's memory, which is freed only with the whole batch (its
            # JSON text and category names too): this way each column goes when it is reordered.
            # The derived columns are made here, in memory of their own already.
            plain.append(pa.RecordBatch.from_arrays(
                [
                    column if name in derived else pa.concat_arrays([column])
                    for name, column in zip(kept.schema.names, kept.columns, strict=True)
                ],
                schema=kept.schema,
            ))
            del batch, kept, fetched
    table = pa.Table.from_batches(plain, schema=pa.schema(f for f in full if f.name not in special))
    plain.clear()

    keys = [(k, "ascending", "at_end") for k in _ORDER_KEYS]
    if latest:
        keys += [(k, "descending", "at_end") for k in _LATEST]
    order = pc.sort_indices(table, sort_keys=keys)
    done: dict[str, pa.Array] = {}  # columns already in order
    if latest:
        order, done["id"] = _first_of_each(table.column("id"), order)
    names = [name for name in spec if name not in special]
    unsorted: list[pa.ChunkedArray | None] = [
        None if name in done else table.column(name) for name in names
    ]
    rows = table.num_rows
    del table
    positions = order.to_numpy()
    # Nullable integers are written straight into the pandas array's buffers, each unsorted
    # row to its slot (the rows dropped as not latest to a spare one past the end): no Arrow
    # copy in order and no copy by pandas, where fresh memory is what costs (page faults).
    in_pandas = {name for name in names if convert and spec[name] == "Int64"}
    if in_pandas:
        slots = np.full(rows, len(positions), np.int64)
        slots[positions] = np.arange(len(positions))

    def reorder(index: int) -> Any:
        column = unsorted[index]
        unsorted[index] = None  # the unsorted copy goes as its sorted one is made
        if column is None:
            sorted_column = done.pop(names[index])
        elif names[index] in in_pandas:
            return _scattered_ints(column, slots, len(positions))
        else:
            sorted_column = column.take(order).combine_chunks()
        del column
        if sorted_column.type == UUID_BYTES:
            sorted_column = uuid_text(sorted_column)
        pa.default_memory_pool().release_unused()  # hand the unsorted copy back to the OS now
        return sorted_column

    # Arrow and numpy release the GIL here, so two threads reorder the columns while this one
    # reorders the parsed documents and the category codes.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="miyabi-reorder") as pool:
        reordered = pool.map(reorder, range(len(names)))
        made = {
            name: join_pieces(pieces.pop(name), dtype, positions)
            for name, dtype in special.items()
        }
        arrays = dict(zip(names, reordered, strict=True))
    made |= {name: arrays.pop(name) for name in in_pandas}
    schema = arrow_schema({name: spec[name] for name in arrays})
    return pa.Table.from_arrays(list(arrays.values()), schema=schema), made


def read_summary(
    bind: Engine | Connection,
    *,
    repository_id: FilterArg = None,
    user_id: FilterArg = None,
    agent_types: FilterArg = None,
    statuses: FilterArg = None,
    since: FilterArg = None,
    until: FilterArg = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per execution from ``v_business_agent_summary``, oldest start first.

    Filters run in SQL: ``repository_id`` / ``user_id`` (one id or many), ``agent_types``,
    ``statuses``, ``since`` (inclusive) and ``until`` (exclusive) on ``started_at`` (rows never
    started drop out of a time filter; they come last otherwise). ``columns`` fetches only those.
    Rows are ordered by ``started_at`` (never started last), then ``created_at``, then ``id``.
    Dtypes: uuids as strings, timestamps ``datetime64[us, UTC]``, ``agent_type``,
    ``agent_category`` and ``status`` categorical, nullable ``Int64``, numerics ``float64``,
    ``result`` as dicts; an empty result has the same columns and dtypes.

    Both databases are read through Arrow: PostgreSQL through ADBC on a session like the
    engine's; reads of 25,000 rows or more of an SQLite file through ADBC in a child process,
    smaller ones, in-memory SQLite and reads inside a caller's transaction through raw rows.
    On PostgreSQL the view's tables are read in one statement and each execution's latest
    analytics row is kept here: the view's rows, faster.
    """
    spec = summary_columns(columns)
    table, made = _read_sorted(bind, spec, {
        "repository_id": repository_id, "user_id": user_id, "agent_types": agent_types,
        "statuses": statuses, "since": since, "until": until,
    }, convert=True)
    return from_arrow(table, spec, made, consume=True)


def read_summary_arrow(
    bind: Engine | Connection,
    *,
    repository_id: FilterArg = None,
    user_id: FilterArg = None,
    agent_types: FilterArg = None,
    statuses: FilterArg = None,
    since: FilterArg = None,
    until: FilterArg = None,
    columns: Sequence[str] | None = None,
) -> pa.Table:
    """:func:`read_summary` as a ``pyarrow.Table`` (``result`` as JSON text, categories as text)."""
    spec = summary_columns(columns)
    return _read_sorted(bind, spec, {
        "repository_id": repository_id, "user_id": user_id, "agent_types": agent_types,
        "statuses": statuses, "since": since, "until": until,
    }, convert=False)[0]


def iter_summary(
    bind: Engine | Connection,
    *,
    chunksize: int = DEFAULT_CHUNK,
    repository_id: FilterArg = None,
    user_id: FilterArg = None,
    agent_types: FilterArg = None,
    statuses: FilterArg = None,
    since: FilterArg = None,
    until: FilterArg = None,
    columns: Sequence[str] | None = None,
) -> Iterator[pd.DataFrame]:
    """:func:`read_summary` in DataFrames of at most ``chunksize`` rows, for larger-than-memory.

    Each chunk has the full dtypes; the rows come in the same order as from read_summary.
    Bad arguments are refused by the call itself, before the first chunk is asked for.
    """
    size = as_int("chunksize", chunksize, low=1, high=INT32_MAX)
    spec = summary_columns(columns)
    batches = _ordered_batches(bind, spec, {
        "repository_id": repository_id, "user_id": user_id, "agent_types": agent_types,
        "statuses": statuses, "since": since, "until": until,
    }, size)
    return (from_arrow(pa.Table.from_batches([batch]), spec) for batch in batches)


def export_summary(
    bind: Engine | Connection,
    path: str | os.PathLike[str],
    *,
    repository_id: FilterArg = None,
    user_id: FilterArg = None,
    agent_types: FilterArg = None,
    statuses: FilterArg = None,
    since: FilterArg = None,
    until: FilterArg = None,
    columns: Sequence[str] | None = None,
) -> int:
    """Write the summary to a Parquet file in constant memory; returns the number of rows.

    The file is written next to ``path`` and renamed into place, so a failed export leaves no
    half-written file. A ``path`` that is a directory, or whose directory does not exist or
    cannot be written, is a :class:`ValidationError` naming ``path``, before any query.
    """
    import pyarrow.parquet as pq

    target = _export_target(path)
    spec = summary_columns(columns)
    schema = arrow_schema(spec)
    batches = _ordered_batches(bind, spec, {
        "repository_id": repository_id, "user_id": user_id, "agent_types": agent_types,
        "statuses": statuses, "since": since, "until": until,
    }, DEFAULT_CHUNK)
    partial = target.with_name(f".{target.name}.partial")
    rows = 0
    try:
        try:
            writer = pq.ParquetWriter(partial, schema, compression="zstd")
        except OSError as exc:  # e.g. a directory this process may not write into
            raise ValidationError(
                "path", str(path), f"cannot be written: {exc.strerror or exc}"
            ) from exc
        with writer:
            for batch in batches:
                writer.write_batch(batch)
                rows += batch.num_rows
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return rows


def _export_target(path: object) -> Path:
    """``export_summary``'s file: a path whose directory exists and that is not a directory."""
    if not isinstance(path, str | os.PathLike):
        raise ValidationError("path", path, "expected a file path (str or os.PathLike)")
    try:
        target = Path(path)
    except TypeError:  # a PathLike whose __fspath__ returns bytes
        raise ValidationError("path", path, "expected a file path (str or os.PathLike)") from None
    if not target.name or target.is_dir():
        raise ValidationError("path", str(path), "is a directory: name the Parquet file")
    if not target.parent.is_dir():
        problem = "is not a directory" if target.parent.exists() else "does not exist"
        raise ValidationError("path", str(path), f"its directory {str(target.parent)!r} {problem}")
    return target


def read_summary_simple(
    bind: Engine | Connection,
    *,
    columns: Sequence[str] | None = None,
    **filter_args: Any,
) -> pd.DataFrame:
    """The plain SQLAlchemy path: row by row, every value through its column type.

    Slow on large results; kept as the reference the fast paths are tested against.
    """
    filters = SummaryFilters.build(**filter_args)
    spec = summary_columns(columns)
    stmt = _summary_select(bind.dialect.name, spec, filters, wire=None)
    with begin(bind) as conn:
        rows = conn.execute(stmt).all()
    return to_frame(rows, spec)


def _one_or_many(field: str, value: object, single: Any) -> list[Any]:
    """A lone value of type ``single`` as a one-item list, an iterable as a list, else refused."""
    if isinstance(value, single):
        return [value]
    if isinstance(value, Iterable):
        return list(value)
    raise ValidationError(field, value, "expected one value or an iterable of them")


def read_logs(
    bind: Engine | Connection,
    *,
    execution_id: uuid.UUID | str | Iterable[uuid.UUID | str] | None = None,
    levels: str | Iterable[str] | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
) -> pd.DataFrame:
    """Log lines, oldest first, and in the order written within an instant.

    ``since``/``until`` (inclusive/exclusive) filter on ``logged_at``; the window is checked
    as :func:`read_summary`'s: ``since`` must be before ``until``.
    """
    stmt = select(*(logs.c[name] for name in LOG_DTYPES))
    if execution_id is not None:
        ids = _one_or_many("execution_id", execution_id, str | uuid.UUID)
        stmt = stmt.where(logs.c.execution_id.in_([as_uuid("execution_id", i) for i in ids]))
    if levels is not None:
        names = _one_or_many("levels", levels, str)
        checked = []
        for name in names:
            try:
                checked.append(check_log_level(name))
            except ValidationError:
                raise ValidationError("levels", name, "unknown log level") from None
        stmt = stmt.where(logs.c.log_level.in_(checked))
    start, end = as_window(since, until)
    if start is not None:
        stmt = stmt.where(logs.c.logged_at >= start)
    if end is not None:
        stmt = stmt.where(logs.c.logged_at < end)
    with begin(bind) as conn:
        # Lines of one instant (log_many stamps a whole batch with one) in the order written.
        rows = conn.execute(stmt.order_by(logs.c.logged_at, write_order(logs))).all()
    return to_frame(rows, LOG_DTYPES)

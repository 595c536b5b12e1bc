"""Whole reads of the summary: :func:`read_summary` and :func:`read_summary_arrow`.

The rows come unordered through the fastest way the database offers
(:mod:`miyabi_analytics._db.fastread`) and are sorted here. On PostgreSQL the view's tables are
read and each execution's latest analytics row is kept here; on both databases the computed
columns are made here from columns fetched anyway. Both with the summary's own rules, in their
Arrow form (:mod:`miyabi_analytics._db.summary.arrow`): the view's rows, faster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from typing import Any, Final, Unpack

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Engine, select

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.fastread import UUID_BYTES, record_batches, uuid_text
from miyabi_analytics._db.schema import executions
from miyabi_analytics._db.summary.arrow import DERIVED, LATEST_KEYS, first_of_each, with_derived
from miyabi_analytics.filters import FilterArgs, SummaryFilters
from miyabi_analytics.frames import (
    SUMMARY_DTYPES,
    arrow_schema,
    convert_piece,
    from_arrow,
    is_converted,
    join_pieces,
    paused_gc,
)
from miyabi_analytics.reader._select import (
    ORDER_KEYS,
    filtered_select,
    summary_columns,
    wire_schema,
)
from miyabi_analytics.vocabulary import TYPED_METRICS

__all__ = ["read_summary", "read_summary_arrow"]

# Whole reads on PostgreSQL join every analytics row and keep each execution's latest one
# themselves: the view's anti-join ("no later row exists") costs the server as much CPU as the
# rest of the read (a parallel plan of 2.7 CPU-s against 1.05 s on one core for the plain join
# with the ADBC session's work_mem, measured), while the client sorts the rows anyway, and an
# execution's rows then sit side by side with its latest first (LATEST_KEYS descending). One
# statement, so one snapshot, as the view; the same policies (the view is security_invoker).
# The keys are fetched, never returned. tests/db/test_fastpaths.py holds the result to the view's.
_LATEST_DTYPES: Final = {LATEST_KEYS[0]: SUMMARY_DTYPES["created_at"], LATEST_KEYS[1]: "Int64"}


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


def _read_sorted(
    bind: Engine | Connection,
    spec: Mapping[str, Any],
    filters: SummaryFilters,
    *,
    convert: bool,
) -> tuple[pa.Table, dict[str, Any]]:
    """The whole read in read_summary's order: Arrow columns, and (``convert``) the others made.

    The rows come unordered; categories become codes and JSON documents are parsed batch by
    batch as they arrive, so their text goes with its batch. Then the rows are sorted
    client-side: with uuids as 16 bytes, reordering the columns is cheap, where the server's
    sort of a million wide rows costs more (measured).
    """
    dialect = Dialect.of(bind)
    derived = [name for name in DERIVED if name in spec]
    needed = [*ORDER_KEYS, *(source for name in derived for source in DERIVED[name])]
    fetch = {k: v for k, v in spec.items() if k not in DERIVED}
    fetch |= {k: SUMMARY_DTYPES[k] for k in needed if k not in fetch}
    tables = dialect.is_postgresql
    latest = tables and any(name in TYPED_METRICS for name in fetch)
    if latest:
        fetch |= _LATEST_DTYPES
    wire = wire_schema(dialect, fetch)
    special = {n: d for n, d in spec.items() if is_converted(d)} if convert else {}
    stmt = filtered_select(dialect, fetch, filters, wire=wire, ordered=False, tables=tables)
    full = pa.schema([*wire, *arrow_schema({name: SUMMARY_DTYPES[name] for name in derived})])
    # One row per execution, as the view has: what a read of an SQLite file counts to choose
    # between its own rows and a process of ADBC's (see _db/fastread/sqlite.py).
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
            batch = with_derived(fetched, derived, full)
            for name, dtype in special.items():
                pieces[name].append(convert_piece(batch.column(name), dtype, name))
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
    schema = pa.schema(f for f in full if f.name not in special)
    return _reordered(plain, schema, spec, special, pieces, latest=latest, convert=convert)


def _reordered(
    plain: list[pa.RecordBatch],
    schema: pa.Schema,
    spec: Mapping[str, Any],
    special: Mapping[str, Any],
    pieces: dict[str, list[Any]],
    *,
    latest: bool,
    convert: bool,
) -> tuple[pa.Table, dict[str, Any]]:
    """The rows of ``plain`` (and the converted ``pieces``) in read_summary's order.

    Consumes ``plain`` and ``pieces``: the batches are emptied out of the caller's list (which
    holds no other reference), so each column's unsorted copy goes as its sorted one is made.
    """
    table = pa.Table.from_batches(plain, schema=schema)
    plain.clear()
    keys = [(k, "ascending", "at_end") for k in ORDER_KEYS]
    if latest:
        keys += [(k, "descending", "at_end") for k in LATEST_KEYS]
    order = pc.sort_indices(table, sort_keys=keys)
    done: dict[str, pa.Array] = {}  # columns already in order
    if latest:
        order, done["id"] = first_of_each(table.column("id"), order)
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
    columns: Sequence[str] | None = None,
    **filters: Unpack[FilterArgs],
) -> pd.DataFrame:
    """One row per execution from ``v_business_agent_summary``, oldest start first.

    Filters run in SQL: ``repository_id`` / ``user_id`` (one id or many), ``agent_types``,
    ``statuses``, ``since`` (inclusive) and ``until`` (exclusive) on ``started_at`` (rows never
    started drop out of a time filter; they come last otherwise). ``columns`` fetches only those.
    Rows are ordered by ``started_at`` (never started last), then ``created_at``, then ``id``.
    Dtypes: uuids as strings, timestamps ``datetime64[us, UTC]``, ``agent_type``,
    ``agent_category`` and ``status`` categorical, nullable ``Int64``, numerics ``float64``,
    ``result`` as dicts; an empty result has the same columns and dtypes.

    Every agent type in the table is read, and ``agent_types`` may name any (other writers'
    agents share the table): a type outside the 15 has category ``"other"`` and is a category
    of ``agent_type`` after the 15, those sorted by name (see :mod:`miyabi_analytics.frames`).

    Both databases are read through Arrow: PostgreSQL through ADBC on a session like the
    engine's; reads of 25,000 rows or more of an SQLite file through ADBC in a child process,
    smaller ones, in-memory SQLite and reads inside a caller's transaction through raw rows.
    On PostgreSQL the view's tables are read in one statement and each execution's latest
    analytics row is kept here: the view's rows, faster.
    """
    spec = summary_columns(columns)
    table, made = _read_sorted(bind, spec, SummaryFilters.of(**filters), convert=True)
    return from_arrow(table, spec, made, consume=True)


def read_summary_arrow(
    bind: Engine | Connection,
    *,
    columns: Sequence[str] | None = None,
    **filters: Unpack[FilterArgs],
) -> pa.Table:
    """:func:`read_summary` as a ``pyarrow.Table`` (``result`` as JSON text, categories as text)."""
    spec = summary_columns(columns)
    return _read_sorted(bind, spec, SummaryFilters.of(**filters), convert=False)[0]

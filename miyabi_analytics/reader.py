"""Read the summary view and the logs into pandas DataFrames, filtered in SQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Engine, Select, select

from miyabi_analytics._db.fastread import DEFAULT_CHUNK, record_batches, select_for_arrow
from miyabi_analytics._db.schema import logs
from miyabi_analytics._db.tx import begin
from miyabi_analytics._db.views import summary
from miyabi_analytics._validate import INT32_MAX, as_int, as_time_bound, as_uuid
from miyabi_analytics.errors import ValidationError
from miyabi_analytics.filters import SummaryFilters
from miyabi_analytics.frames import (
    LOG_DTYPES,
    SUMMARY_DTYPES,
    arrow_schema,
    from_arrow,
    json_values,
    to_frame,
)
from miyabi_analytics.metrics import check_log_level

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


def _summary_select(
    dialect_name: str,
    spec: Mapping[str, Any],
    filters: SummaryFilters,
    *,
    arrow: bool,
) -> Select[Any]:
    columns = {name: summary.c[name] for name in spec}
    outputs = (
        select_for_arrow(dialect_name, columns, {f.name: f.type for f in arrow_schema(spec)})
        if arrow
        else list(columns.values())
    )
    return filters.apply(select(*outputs), summary.c).order_by(
        summary.c.started_at.asc().nulls_last(), summary.c.created_at, summary.c.id
    )


def _batches(
    bind: Engine | Connection,
    chunksize: int,
    columns: Sequence[str] | None,
    filter_args: Mapping[str, Any],
) -> tuple[dict[str, Any], pa.Schema, Iterator[pa.RecordBatch]]:
    filters = SummaryFilters.build(**filter_args)
    spec = summary_columns(columns)
    schema = arrow_schema(spec)
    dialect_name = bind.dialect.name
    stmt = _summary_select(dialect_name, spec, filters, arrow=True)
    return spec, schema, record_batches(bind, stmt, schema, chunksize)


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
    Dtypes: uuids as strings, timestamps ``datetime64[us, UTC]``, ``agent_type``,
    ``agent_category`` and ``status`` categorical, nullable ``Int64``, numerics ``float64``,
    ``result`` as dicts; an empty result has the same columns and dtypes.

    PostgreSQL is read through Arrow (ADBC); SQLite through raw rows turned into Arrow arrays.
    """
    spec = summary_columns(columns)
    parsed: list[Any] = []
    batches = []
    for batch in _unordered_batches(bind, spec, {
        "repository_id": repository_id, "user_id": user_id, "agent_types": agent_types,
        "statuses": statuses, "since": since, "until": until,
    }):
        if "result" in spec:  # parse while the next batch is still being fetched, and let
            parsed.append(json_values(batch.column("result")))  # its text go at once
            batch = batch.drop_columns(["result"])
        batches.append(batch)
    table, order = _sorted(batches, {k: v for k, v in spec.items() if k != "result"})
    extra = {}
    if "result" in spec:
        joined = np.concatenate(parsed) if parsed else np.empty(0, dtype=object)
        parsed.clear()
        extra["result"] = joined[order]
        del joined
    return from_arrow(table, spec, extra, consume=True)


_ORDER_KEYS: Final = ("started_at", "created_at", "id")


def _unordered_batches(
    bind: Engine | Connection, spec: Mapping[str, Any], filter_args: Mapping[str, Any]
) -> Iterator[pa.RecordBatch]:
    """Batches of ``spec``'s columns plus the sort keys, in whatever order the database likes.

    The rows are sorted client-side in Arrow afterwards: cheaper than making the server sort a
    million wide rows (it spills to disk with the default work_mem).
    """
    filters = SummaryFilters.build(**filter_args)
    fetch = dict(spec) | {k: SUMMARY_DTYPES[k] for k in _ORDER_KEYS if k not in spec}
    schema = arrow_schema(fetch)
    columns = {name: summary.c[name] for name in fetch}
    outputs = select_for_arrow(
        bind.dialect.name, columns, {f.name: f.type for f in schema}
    )
    stmt = filters.apply(select(*outputs), summary.c)
    return record_batches(bind, stmt, schema)


def _sorted(batches: list[pa.RecordBatch], spec: Mapping[str, Any]) -> tuple[pa.Table, Any]:
    """The rows in read_summary's order (start, never-started last; created_at; id).

    Empties ``batches`` and reorders column by column, releasing each unsorted column as its
    sorted copy is made, so the peak is the table plus one column, not two tables.
    """
    fetch = dict(spec) | {k: SUMMARY_DTYPES[k] for k in _ORDER_KEYS if k not in spec}
    table = pa.Table.from_batches(batches, schema=arrow_schema(fetch))
    batches.clear()
    order = pc.sort_indices(
        table, sort_keys=[(k, "ascending", "at_end") for k in _ORDER_KEYS]
    ).to_numpy()
    table = table.select(list(spec))
    arrays = []
    for _ in range(table.num_columns):
        arrays.append(table.column(0).take(order).combine_chunks())
        table = table.remove_column(0)
    return pa.Table.from_arrays(arrays, schema=arrow_schema(spec)), order


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
    batches = list(_unordered_batches(bind, spec, {
        "repository_id": repository_id, "user_id": user_id, "agent_types": agent_types,
        "statuses": statuses, "since": since, "until": until,
    }))
    return _sorted(batches, spec)[0]


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
    """
    size = as_int("chunksize", chunksize, low=1, high=INT32_MAX)
    spec, schema, batches = _batches(bind, size, columns, {
        "repository_id": repository_id, "user_id": user_id, "agent_types": agent_types,
        "statuses": statuses, "since": since, "until": until,
    })
    for batch in batches:
        yield from_arrow(pa.Table.from_batches([batch], schema=schema), spec)


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
    half-written file.
    """
    import pyarrow.parquet as pq

    _, schema, batches = _batches(bind, DEFAULT_CHUNK, columns, {
        "repository_id": repository_id, "user_id": user_id, "agent_types": agent_types,
        "statuses": statuses, "since": since, "until": until,
    })
    target = Path(path)
    partial = target.with_name(f".{target.name}.partial")
    rows = 0
    try:
        with pq.ParquetWriter(partial, schema, compression="zstd") as writer:
            for batch in batches:
                writer.write_batch(batch)
                rows += batch.num_rows
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return rows


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
    stmt = _summary_select(bind.dialect.name, spec, filters, arrow=False)
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
    """Log lines, oldest first; ``since``/``until`` (inclusive/exclusive) on ``logged_at``."""
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
    if since is not None:
        stmt = stmt.where(logs.c.logged_at >= as_time_bound("since", since))
    if until is not None:
        stmt = stmt.where(logs.c.logged_at < as_time_bound("until", until))
    with begin(bind) as conn:
        rows = conn.execute(stmt.order_by(logs.c.logged_at, logs.c.id)).all()
    return to_frame(rows, LOG_DTYPES)

"""Streaming reads of the summary, in constant memory: :func:`iter_summary`, :func:`export_summary`.

They cannot sort what they have not seen yet, so the database sorts, and the view computes the
summary's columns (:mod:`miyabi_analytics._db.summary`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Unpack

import pandas as pd
import pyarrow as pa
from sqlalchemy import Connection, Engine

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.fastread import DEFAULT_CHUNK, record_batches
from miyabi_analytics._validate import INT32_MAX, as_int
from miyabi_analytics.errors import ValidationError
from miyabi_analytics.filters import FilterArgs, SummaryFilters
from miyabi_analytics.frames import arrow_schema, from_arrow
from miyabi_analytics.reader._select import filtered_select, summary_columns

__all__ = ["export_summary", "iter_summary"]


def _ordered_batches(
    bind: Engine | Connection,
    spec: Mapping[str, Any],
    filters: SummaryFilters,
    chunksize: int,
) -> Iterator[pa.RecordBatch]:
    """``spec``'s columns in read_summary's order, sorted by the database, in ``chunksize``s."""
    schema = arrow_schema(spec)
    stmt = filtered_select(Dialect.of(bind), spec, filters, wire=schema)
    return record_batches(bind, stmt, schema, chunksize)


def iter_summary(
    bind: Engine | Connection,
    *,
    chunksize: int = DEFAULT_CHUNK,
    columns: Sequence[str] | None = None,
    **filters: Unpack[FilterArgs],
) -> Iterator[pd.DataFrame]:
    """:func:`read_summary` in DataFrames of at most ``chunksize`` rows, for larger-than-memory.

    Each chunk has the full dtypes; the rows come in the same order as from read_summary. A
    chunk holding agent types outside the 15 has them as extra categories of ``agent_type``
    (see :mod:`miyabi_analytics.frames`), so chunks may differ there (``pd.concat`` of chunks
    whose categories differ gives that column as ``object``).
    Bad arguments are refused by the call itself, before the first chunk is asked for.
    """
    size = as_int("chunksize", chunksize, low=1, high=INT32_MAX)
    spec = summary_columns(columns)
    batches = _ordered_batches(bind, spec, SummaryFilters.of(**filters), size)
    return (from_arrow(pa.Table.from_batches([batch]), spec) for batch in batches)


def export_summary(
    bind: Engine | Connection,
    path: str | os.PathLike[str],
    *,
    columns: Sequence[str] | None = None,
    **filters: Unpack[FilterArgs],
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
    batches = _ordered_batches(bind, spec, SummaryFilters.of(**filters), DEFAULT_CHUNK)
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

"""One dtype spec per frame, and the conversion of database rows into it.

Every frame this package returns goes through :func:`to_frame`, so dtypes are the same on both
databases and for empty results: uuids as strings, timestamps ``datetime64[us, UTC]``, nullable
integers as ``Int64``, numerics as ``float64``, agent type / category / status as ``category``.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import JSON, ColumnElement, Float, Integer, Numeric, String

from miyabi_analytics._db.schema import logs
from miyabi_analytics._db.types import LONG_INTEGER_PATTERN, UtcDateTime, UuidText, json_loads
from miyabi_analytics._db.views import summary
from miyabi_analytics.vocabulary import AGENT_CATEGORIES, AGENT_TYPES, LOG_LEVELS, ExecutionStatus

__all__ = [
    "LOG_DTYPES",
    "SUMMARY_DTYPES",
    "arrow_schema",
    "convert_piece",
    "empty_frame",
    "from_arrow",
    "is_converted",
    "join_pieces",
    "json_values",
    "paused_gc",
    "to_frame",
]

UTC_TS: Final = pd.DatetimeTZDtype(unit="us", tz="UTC")
STR: Final = pd.StringDtype(na_value=np.nan)
AGENT_TYPE_DTYPE: Final = pd.CategoricalDtype(list(AGENT_TYPES))
CATEGORY_DTYPE: Final = pd.CategoricalDtype(list(AGENT_CATEGORIES))
STATUS_DTYPE: Final = pd.CategoricalDtype([s.value for s in ExecutionStatus])
LEVEL_DTYPE: Final = pd.CategoricalDtype(list(LOG_LEVELS))

# Columns whose values are a vocabulary: categoricals of it, in its order.
_VOCABULARY_DTYPES: Final[Mapping[str, Any]] = {
    "agent_type": AGENT_TYPE_DTYPE,
    "agent_category": CATEGORY_DTYPE,
    "status": STATUS_DTYPE,
    "log_level": LEVEL_DTYPE,
}


def dtype_of(column: ColumnElement[Any]) -> Any:
    """The pandas dtype a column reads as, from its name (a vocabulary) or its SQL type.

    The one type map: uuids and text as strings, timestamps as UTC, integers as nullable
    ``Int64`` (any column may be NULL in a view's outer join), floats as ``float64``, JSON
    documents as Python objects.
    """
    name: str | None = getattr(column, "name", None)
    if name is not None and name in _VOCABULARY_DTYPES:
        return _VOCABULARY_DTYPES[name]
    sql_type = column.type
    if isinstance(sql_type, UtcDateTime):
        return UTC_TS
    if isinstance(sql_type, UuidText | String):  # Text is a String
        return STR
    if isinstance(sql_type, Integer):
        return "Int64"
    if isinstance(sql_type, Float | Numeric):
        return "float64"
    if isinstance(sql_type, JSON):
        return object
    raise TypeError(f"no dtype for {name} ({sql_type!r})")


SUMMARY_DTYPES: Final[Mapping[str, Any]] = {c.name: dtype_of(c) for c in summary.columns}
"""``read_summary``'s columns and dtypes: the view's columns (the summary module's select)."""

LOG_DTYPES: Final[Mapping[str, Any]] = {
    name: dtype_of(logs.c[name])
    for name in ("id", "execution_id", "log_level", "message", "metadata", "logged_at")
}


def _column(values: Sequence[Any], dtype: Any) -> Any:
    if dtype is STR:
        return pd.array([None if v is None else str(v) for v in values], dtype=STR)
    if dtype is UTC_TS:
        return pd.to_datetime(pd.Series(values, dtype=object), utc=True).astype(UTC_TS)
    if isinstance(dtype, pd.CategoricalDtype):
        return pd.Categorical([None if v is None else str(v) for v in values], dtype=dtype)
    if dtype == "float64":
        return np.array([np.nan if v is None else float(v) for v in values], dtype="float64")
    if dtype == "Int64":
        return pd.array([None if v is None else int(v) for v in values], dtype="Int64")
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def to_frame(rows: Sequence[Sequence[Any]], spec: Mapping[str, Any]) -> pd.DataFrame:
    """Rows (tuples in ``spec``'s column order) as a DataFrame of exactly ``spec``'s dtypes."""
    names = list(spec)
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    data = {name: _column(col, spec[name]) for name, col in zip(names, columns, strict=True)}
    return pd.DataFrame(data, columns=names, index=pd.RangeIndex(len(rows)))


def empty_frame(spec: Mapping[str, Any]) -> pd.DataFrame:
    """No rows, the same columns and dtypes."""
    return to_frame([], spec)


def _arrow_type(dtype: Any) -> pa.DataType:
    if dtype is UTC_TS:
        return pa.timestamp("us", tz="UTC")
    if dtype == "Int64":
        return pa.int64()
    if dtype == "float64":
        return pa.float64()
    return pa.string()  # strings, categories, and JSON documents as their text


def arrow_schema(spec: Mapping[str, Any]) -> pa.Schema:
    """The Arrow schema matching a dtype spec (JSON columns travel as text)."""
    return pa.schema([pa.field(name, _arrow_type(dtype)) for name, dtype in spec.items()])


def is_converted(dtype: Any) -> bool:
    """Whether a spec's column is converted by hand (categories, JSON) rather than by Arrow."""
    return isinstance(dtype, pd.CategoricalDtype) or dtype is object


def convert_piece(column: pa.ChunkedArray | pa.Array, dtype: Any) -> Any:
    """One batch of a hand-converted column: category codes (``int8``) or parsed JSON.

    Done batch by batch as the rows arrive, so the work overlaps the fetch of the next batch
    and the JSON text can be dropped at once; :func:`join_pieces` makes the column.
    """
    if isinstance(dtype, pd.CategoricalDtype):
        values = pa.array([str(c) for c in dtype.categories], pa.string())
        codes = pc.fill_null(pc.index_in(column, value_set=values), -1)
        return codes.to_numpy().astype("int8")
    return json_values(column)


def join_pieces(pieces: Sequence[Any], dtype: Any, order: Any = None) -> Any:
    """The column made of :func:`convert_piece`'s pieces, rows taken in ``order`` if given."""
    categorical = isinstance(dtype, pd.CategoricalDtype)
    empty = np.empty(0, dtype="int8" if categorical else object)
    values = np.concatenate(pieces) if pieces else empty
    if order is not None:
        values = values[order]
    return pd.Categorical.from_codes(values, dtype=dtype) if categorical else values


@contextmanager
def paused_gc() -> Iterator[None]:
    """The cyclic garbage collector off for a bulk parse, as it was before afterwards.

    Parsing a million documents makes millions of container objects, none of them cyclic
    garbage; the collector would otherwise traverse them again and again as they are made.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def json_values(column: pa.ChunkedArray | pa.Array) -> Any:
    """JSON text as an object array of parsed documents (``None`` stays ``None``).

    Parsed as the engines' ``json_loads`` would, integers beyond 64 bits as floats; orjson
    (several times faster on a million small documents) for all but the few documents whose
    text has such a long run of digits, found by one vectorised regex.
    """
    texts = column.to_pylist()
    out = np.empty(len(texts), dtype=object)
    out[:] = [None if text is None else orjson.loads(text) for text in texts]
    if len(texts):
        long_digits = pc.fill_null(pc.match_substring_regex(column, LONG_INTEGER_PATTERN), False)
        for index in np.flatnonzero(long_digits.to_numpy(zero_copy_only=False)):
            out[index] = json_loads(texts[index])
    return out


_TYPES_MAPPER: Final[Mapping[pa.DataType, Any]] = {
    pa.string(): STR,
    pa.large_string(): STR,
    pa.int64(): pd.Int64Dtype(),
}


def from_arrow(
    table: pa.Table,
    spec: Mapping[str, Any],
    converted: Mapping[str, Any] | None = None,
    *,
    consume: bool = False,
) -> pd.DataFrame:
    """An Arrow table of :func:`arrow_schema` as a DataFrame of exactly ``spec``'s dtypes.

    ``converted`` may hold hand-converted columns already made (:func:`join_pieces`, in the
    table's row order); the table need not have them. ``consume=True`` lets the conversion free
    the table's buffers as it goes (the caller must hold no other reference to them).
    """
    special = {name: dtype for name, dtype in spec.items() if is_converted(dtype)}
    made = dict(converted or {})
    for name, dtype in special.items():
        if name not in made:
            made[name] = join_pieces([convert_piece(table.column(name), dtype)], dtype)
    # A table of no columns has no rows: the made columns then say how many there are.
    rows = table.num_rows if table.num_columns else len(next(iter(made.values()), ()))
    present = [name for name in special if name in table.column_names]
    if present:
        table = table.drop_columns(present)
    frame: pd.DataFrame = table.to_pandas(
        types_mapper=_TYPES_MAPPER.get, split_blocks=True, self_destruct=consume
    )
    del table
    frame.index = pd.RangeIndex(rows)
    if made:
        # Joined, not assigned column by column: ``frame[name] = values`` copies each array
        # (100 MB and a million reference counts on a 1M-row read), a join of frames does not.
        made_frame = pd.DataFrame(made, index=frame.index, copy=False)
        frame = pd.concat([frame, made_frame], axis=1)
    return frame[list(spec)]

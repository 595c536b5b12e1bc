"""One dtype spec per frame, and the conversion of database rows into it.

Every frame this package returns goes through :func:`to_frame` (or :func:`from_arrow`), so dtypes
are the same on both databases and for empty results: uuids as strings, timestamps
``datetime64[us, UTC]``, nullable integers as ``Int64``, numerics as ``float64``, agent type /
category / status / log level as ``category``.

The vocabularies are open when reading, because other writers share the tables (the upstream
fleet's agents, psql). A categorical column's categories are its vocabulary in the design's
order (``agent_category``: the four, then ``"other"``, always: an empty frame has the same
dtype); a stored value outside them is kept, never made NaN: it becomes a category after the
vocabulary's, those extra ones sorted by name. So a frame holding ``CoordinatorAgent`` has the
15 agent types in the design's order, then ``CoordinatorAgent``; a frame without such values
(an empty one included) has exactly the spec's dtype. Per-column reading rules
(:data:`READ_RULES`): a stored ``warn`` reads as ``warning``, and a missing ``agent_category``
(the view of a revision that knew only the 15) reads as ``"other"``.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
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
from miyabi_analytics.vocabulary import (
    AGENT_TYPES,
    LOG_LEVEL_ALIASES,
    LOG_LEVELS,
    OTHER_CATEGORY,
    READ_CATEGORIES,
    ExecutionStatus,
)

__all__ = [
    "LOG_DTYPES",
    "READ_RULES",
    "SUMMARY_DTYPES",
    "CodedPiece",
    "ReadRule",
    "arrow_schema",
    "categorical",
    "convert_piece",
    "empty_frame",
    "from_arrow",
    "is_converted",
    "join_pieces",
    "json_values",
    "open_dtype",
    "paused_gc",
    "to_frame",
]

UTC_TS: Final = pd.DatetimeTZDtype(unit="us", tz="UTC")
STR: Final = pd.StringDtype(na_value=np.nan)
AGENT_TYPE_DTYPE: Final = pd.CategoricalDtype(list(AGENT_TYPES))
CATEGORY_DTYPE: Final = pd.CategoricalDtype(list(READ_CATEGORIES))
STATUS_DTYPE: Final = pd.CategoricalDtype([s.value for s in ExecutionStatus])
LEVEL_DTYPE: Final = pd.CategoricalDtype(list(LOG_LEVELS))

# Columns whose values are a vocabulary: categoricals of it, in its order.
_VOCABULARY_DTYPES: Final[Mapping[str, Any]] = {
    "agent_type": AGENT_TYPE_DTYPE,
    "agent_category": CATEGORY_DTYPE,
    "status": STATUS_DTYPE,
    "log_level": LEVEL_DTYPE,
}


@dataclass(frozen=True, slots=True)
class ReadRule:
    """How a categorical column's stored values read: aliases mapped, a NULL filled."""

    aliases: Mapping[str, str] = field(default_factory=dict)
    null_as: str | None = None


_PLAIN: Final = ReadRule()
READ_RULES: Final[Mapping[str, ReadRule]] = {
    # NULL only where the view's category CASE knew the 15 alone (agent_type is NOT NULL).
    "agent_category": ReadRule(null_as=OTHER_CATEGORY),
    "log_level": ReadRule(aliases=LOG_LEVEL_ALIASES),
}
"""The reading rules of categorical columns, by column name; other columns read as stored."""


def open_dtype(dtype: pd.CategoricalDtype, extras: Iterable[str]) -> pd.CategoricalDtype:
    """``dtype`` with ``extras`` (values outside its categories) after its own, sorted.

    ``dtype`` itself when there are none, so frames without foreign values keep the spec's dtype.
    """
    more = sorted(set(extras).difference(dtype.categories))
    return pd.CategoricalDtype([*dtype.categories, *more]) if more else dtype


def categorical(
    values: Sequence[Any], dtype: pd.CategoricalDtype, name: str | None = None
) -> pd.Categorical:
    """Stored values as a categorical of ``dtype`` opened to them, read by ``name``'s rule."""
    rule = READ_RULES.get(name or "", _PLAIN)
    texts = [
        rule.null_as if v is None else rule.aliases.get(str(v), str(v)) for v in values
    ]
    extras = {t for t in texts if t is not None}.difference(dtype.categories)
    return pd.Categorical(texts, dtype=open_dtype(dtype, extras))


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


def _column(values: Sequence[Any], dtype: Any, name: str) -> Any:
    if dtype is STR:
        return pd.array([None if v is None else str(v) for v in values], dtype=STR)
    if dtype is UTC_TS:
        return pd.to_datetime(pd.Series(values, dtype=object), utc=True).astype(UTC_TS)
    if isinstance(dtype, pd.CategoricalDtype):
        return categorical(values, dtype, name)
    if dtype == "float64":
        return np.array([np.nan if v is None else float(v) for v in values], dtype="float64")
    if dtype == "Int64":
        return pd.array([None if v is None else int(v) for v in values], dtype="Int64")
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def to_frame(rows: Sequence[Sequence[Any]], spec: Mapping[str, Any]) -> pd.DataFrame:
    """Rows (tuples in ``spec``'s column order) as a DataFrame of ``spec``'s dtypes.

    Exactly those, except a categorical holding stored values outside its categories: it is
    opened to them (:func:`open_dtype`), never made NaN.
    """
    names = list(spec)
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    data = {
        name: _column(col, spec[name], name) for name, col in zip(names, columns, strict=True)
    }
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


@dataclass(frozen=True, slots=True)
class CodedPiece:
    """One batch of a categorical column: codes into the categories, then into ``extras``.

    ``codes[i] < n`` (the spec's ``n`` categories) is that category, ``n + j`` is
    ``extras[j]`` (this batch's values outside the categories, sorted), ``-1`` is missing.
    """

    codes: Any
    extras: tuple[str, ...] = ()


def _code_type(count: int) -> Any:
    """The smallest signed integer type holding ``count`` category codes and -1."""
    return next(t for t in (np.int8, np.int16, np.int32) if count <= np.iinfo(t).max)


def _coded(column: pa.ChunkedArray | pa.Array, dtype: Any, rule: ReadRule) -> CodedPiece:
    known = [str(c) for c in dtype.categories]
    if rule.null_as is not None:
        column = pc.fill_null(column, rule.null_as)
    aliases = [a for a in rule.aliases if a not in known]
    value_set = [*known, *aliases]
    index = pc.index_in(column, value_set=pa.array(value_set, pa.string()))
    extras: list[str] = []
    # The common case costs one comparison: every value found, or missing.
    if index.null_count > column.null_count:
        found = pc.is_valid(index)
        foreign = pc.filter(column, pc.and_(pc.invert(found), pc.is_valid(column)))
        extras = sorted(set(pc.unique(foreign).to_pylist()))
        index = pc.index_in(column, value_set=pa.array([*value_set, *extras], pa.string()))
    codes = pc.fill_null(index, -1).to_numpy()
    if aliases or extras:
        lookup = np.arange(len(value_set) + len(extras))
        for i, alias in enumerate(aliases):
            lookup[len(known) + i] = known.index(rule.aliases[alias])
        lookup[len(value_set):] = np.arange(len(known), len(known) + len(extras))
        codes = np.where(codes >= 0, lookup[codes], -1)
    return CodedPiece(codes.astype(_code_type(len(known) + len(extras))), tuple(extras))


def convert_piece(
    column: pa.ChunkedArray | pa.Array, dtype: Any, name: str | None = None
) -> Any:
    """One batch of a hand-converted column: a :class:`CodedPiece` or parsed JSON.

    Done batch by batch as the rows arrive, so the work overlaps the fetch of the next batch
    and the JSON text can be dropped at once; :func:`join_pieces` makes the column. ``name``
    picks the column's :data:`READ_RULES`.
    """
    if isinstance(dtype, pd.CategoricalDtype):
        return _coded(column, dtype, READ_RULES.get(name or "", _PLAIN))
    return json_values(column)


def _joined_codes(pieces: Sequence[CodedPiece], dtype: pd.CategoricalDtype) -> tuple[Any, Any]:
    """The pieces' codes in one array, and the dtype opened to every piece's extras."""
    final = open_dtype(dtype, (e for piece in pieces for e in piece.extras))
    if not pieces:
        return np.empty(0, dtype=np.int8), final
    known = len(dtype.categories)
    where = {value: code for code, value in enumerate(final.categories)}
    codes = []
    for piece in pieces:
        if piece.extras:
            lookup = np.array([*range(known), *(where[e] for e in piece.extras)])
            codes.append(np.where(piece.codes >= 0, lookup[piece.codes], -1))
        else:
            codes.append(piece.codes)
    values = np.concatenate(codes) if len(codes) > 1 else codes[0]
    return values.astype(_code_type(len(final.categories)), copy=False), final


def join_pieces(pieces: Sequence[Any], dtype: Any, order: Any = None) -> Any:
    """The column made of :func:`convert_piece`'s pieces, rows taken in ``order`` if given."""
    if isinstance(dtype, pd.CategoricalDtype):
        codes, final = _joined_codes(pieces, dtype)
        if order is not None:
            codes = codes[order]
        return pd.Categorical.from_codes(codes, dtype=final)
    values = np.concatenate(pieces) if pieces else np.empty(0, dtype=object)
    if order is not None:
        values = values[order]
    return values


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
    """An Arrow table of :func:`arrow_schema` as a DataFrame of ``spec``'s dtypes.

    Categoricals are opened to stored values outside them, as by :func:`to_frame`.

    ``converted`` may hold hand-converted columns already made (:func:`join_pieces`, in the
    table's row order); the table need not have them. ``consume=True`` lets the conversion free
    the table's buffers as it goes (the caller must hold no other reference to them).
    """
    special = {name: dtype for name, dtype in spec.items() if is_converted(dtype)}
    made = dict(converted or {})
    for name, dtype in special.items():
        if name not in made:
            made[name] = join_pieces([convert_piece(table.column(name), dtype, name)], dtype)
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

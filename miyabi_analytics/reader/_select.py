"""What a summary read selects: the columns asked for, filtered, shaped for Arrow.

Also the plain path (:func:`_read_summary_simple`): row by row through SQLAlchemy, slow on
large results, the reference the fast paths are tested against.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Unpack

import pandas as pd
import pyarrow as pa
from sqlalchemy import Connection, Engine, Select, select

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.fastread import UUID_BYTES, select_for_arrow
from miyabi_analytics._db.schema import analytics, executions
from miyabi_analytics._db.summary.arrow import latest_key_columns
from miyabi_analytics._db.tx import begin
from miyabi_analytics._db.types import UuidText
from miyabi_analytics._db.views import summary
from miyabi_analytics.errors import ValidationError
from miyabi_analytics.filters import FilterArgs, SummaryFilters
from miyabi_analytics.frames import SUMMARY_DTYPES, arrow_schema, to_frame
from miyabi_analytics.vocabulary import TYPED_METRICS

__all__ = [
    "ORDER_KEYS",
    "TABLE_COLUMNS",
    "filtered_select",
    "summary_columns",
    "wire_schema",
]

# read_summary's order: start (never started last), then creation, then id. The database sorts
# by them for the streaming readers, Arrow for the whole reads (created_at and id are never NULL).
ORDER_KEYS: Final = ("started_at", "created_at", "id")

# A whole read on PostgreSQL reads the view's tables: every analytics row of an execution, each
# with the keys that pick the latest (see miyabi_analytics._db.summary.arrow).
TABLE_COLUMNS: Final[Mapping[str, Any]] = {
    **{name: executions.c[name] for name in SUMMARY_DTYPES if name in executions.c},
    **{name: analytics.c[name] for name in TYPED_METRICS},
    **latest_key_columns(),
}


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


def filtered_select(
    dialect: Dialect,
    spec: Mapping[str, Any],
    filters: SummaryFilters,
    *,
    wire: pa.Schema | None,
    ordered: bool = True,
    tables: bool = False,
) -> Select[Any]:
    """``spec``'s columns of the view, filtered; shaped for Arrow as ``wire`` unless ``None``.

    ``tables=True`` reads the view's tables instead (see :data:`TABLE_COLUMNS`): every
    analytics row of an execution, not only the latest, with its latest keys.
    """
    source: Any = summary
    columns = {name: (TABLE_COLUMNS if tables else summary.c)[name] for name in spec}
    if tables:
        joined = any(column.table is analytics for column in columns.values())
        on = analytics.c.execution_id == executions.c.id
        source = executions.outerjoin(analytics, on) if joined else executions
    outputs = (
        list(columns.values())
        if wire is None
        else select_for_arrow(dialect, columns, {f.name: f.type for f in wire})
    )
    filtered = executions.c if tables else summary.c
    stmt = filters.apply(select(*outputs).select_from(source), filtered)
    if not ordered:
        return stmt
    return stmt.order_by(*(summary.c[key].asc().nulls_last() for key in ORDER_KEYS))


def wire_schema(dialect: Dialect, spec: Mapping[str, Any]) -> pa.Schema:
    """:func:`arrow_schema`, with uuids as their 16 bytes on PostgreSQL (see select_for_arrow)."""
    schema = arrow_schema(spec)
    if not dialect.is_postgresql:
        return schema
    return pa.schema([
        pa.field(f.name, UUID_BYTES)
        if isinstance(TABLE_COLUMNS.get(f.name, summary.c.get(f.name)).type, UuidText)
        else f
        for f in schema
    ])


def _read_summary_simple(
    bind: Engine | Connection,
    *,
    columns: Sequence[str] | None = None,
    **filter_args: Unpack[FilterArgs],
) -> pd.DataFrame:
    """The plain SQLAlchemy path: row by row, every value through its column type."""
    filters = SummaryFilters.of(**filter_args)
    spec = summary_columns(columns)
    stmt = filtered_select(Dialect.of(bind), spec, filters, wire=None)
    with begin(bind) as conn:
        rows = conn.execute(stmt).all()
    return to_frame(rows, spec)

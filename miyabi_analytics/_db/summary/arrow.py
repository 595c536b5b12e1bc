"""The summary's rules again, client-side on Arrow arrays: the same rules, for speed.

A whole read makes the computed columns from columns it fetches anyway: the server's category
``CASE`` and span arithmetic cost 0.45 s of a 1M-row read (measured), Arrow a few
milliseconds. And on PostgreSQL it joins every analytics row and keeps each execution's latest
itself (see ``miyabi_analytics.reader``). Each function here is the twin of one in
:mod:`~miyabi_analytics._db.summary.rules` and gives the same values:

- :func:`agent_category` is :func:`~.rules.agent_category_of` at head (a type outside the 15:
  ``"other"``);
- :func:`duration_seconds` is :func:`~.rules.duration_seconds` (the double nearest the exact
  microsecond count over a million);
- :data:`LATEST_KEYS` sorted descending, then :func:`first_of_each`, is
  :func:`~.rules.is_latest_analytics` with :attr:`~.rules.Tie.WRITE_ORDER`.

``tests/db/test_summary_definition.py`` and ``tests/db/test_fastpaths.py`` hold them to the view.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import ColumnElement

from miyabi_analytics._db.expressions import write_order
from miyabi_analytics._db.schema import analytics
from miyabi_analytics._db.summary.rules import EXACT_MICROS
from miyabi_analytics.vocabulary import CATEGORY_OF, OTHER_CATEGORY

__all__ = [
    "DERIVED",
    "LATEST_KEYS",
    "agent_category",
    "duration_seconds",
    "first_of_each",
    "latest_key_columns",
    "with_derived",
]

LATEST_KEYS: Final = ("_latest_created_at", "_latest_write_order")
"""The analytics row's keys of "latest", fetched beside it and sorted descending."""

DERIVED: Final[Mapping[str, tuple[str, ...]]] = {
    "agent_category": ("agent_type",),
    "duration_seconds": ("started_at", "completed_at"),
}
"""The summary's computed columns and the columns each is made from."""

_TYPE_NAMES: Final = pa.array(list(CATEGORY_OF), pa.string())
_CATEGORY_OF_TYPE: Final = pa.array(list(CATEGORY_OF.values()), pa.string())


def latest_key_columns() -> dict[str, ColumnElement[Any]]:
    """:data:`LATEST_KEYS` as columns of ``business_agent_analytics``."""
    return {LATEST_KEYS[0]: analytics.c.created_at, LATEST_KEYS[1]: write_order(analytics)}


def agent_category(agent_types: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Each agent type's category; ``"other"`` for a type outside the 15, as the SQL ``CASE``."""
    index = pc.index_in(agent_types, value_set=_TYPE_NAMES)
    return pc.fill_null(pc.take(_CATEGORY_OF_TYPE, index), OTHER_CATEGORY)


def duration_seconds(started: pa.Array, completed: pa.Array) -> pa.Array:
    """``completed - started`` in seconds: the double nearest the exact value, as the SQL's.

    The microsecond count is exact as a double below 2**53 (285 years), and one IEEE division
    rounds it correctly; a longer span is computed exactly in Python. NULL if either is NULL.
    """
    micros = pc.subtract(completed.cast(pa.int64()), started.cast(pa.int64()))
    seconds = pc.divide(micros.cast(pa.float64(), safe=False), 1_000_000.0)
    longest = pc.max(pc.abs(micros)).as_py()
    if longest is None or longest < EXACT_MICROS:
        return seconds
    exact = [None if m is None else float(Fraction(m, 1_000_000)) for m in micros.to_pylist()]
    return pa.array(exact, pa.float64())


def with_derived(batch: pa.RecordBatch, names: Sequence[str], schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with the :data:`DERIVED` columns ``names`` appended (``schema``: the result's)."""
    if not names:
        return batch
    arrays = list(batch.columns)
    for name in names:
        if name == "agent_category":
            arrays.append(agent_category(batch.column("agent_type")))
        else:
            started, completed = batch.column("started_at"), batch.column("completed_at")
            arrays.append(duration_seconds(started, completed))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def first_of_each(ids: pa.ChunkedArray, order: pa.Array) -> tuple[pa.Array, pa.Array]:
    """``order`` without the rows repeating the id before them, and the ids in that order.

    With each execution's rows side by side, sorted by :data:`LATEST_KEYS` descending, the
    first of each id is its execution's latest analytics row. ``ids`` are 16-byte uuids; the
    sorted ids are the read's id column, so it is not taken twice.
    """
    sorted_ids = ids.take(order).combine_chunks()
    count = len(sorted_ids)
    halves = np.frombuffer(sorted_ids.buffers()[1], np.uint64, count=2 * count).reshape(count, 2)
    repeats = (halves[1:] == halves[:-1]).all(axis=1)
    if not repeats.any():
        return order, sorted_ids
    keep = pa.array(np.concatenate([[True], ~repeats]))
    return order.filter(keep), sorted_ids.filter(keep)

"""One dtype spec per frame, and the conversion of database rows into it.

Every frame this package returns goes through :func:`to_frame`, so dtypes are the same on both
databases and for empty results: uuids as strings, timestamps ``datetime64[us, UTC]``, nullable
integers as ``Int64``, numerics as ``float64``, agent type / category / status as ``category``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import pandas as pd

from miyabi_analytics.agents import AGENT_CATEGORIES, AGENT_TYPES
from miyabi_analytics.metrics import LOG_LEVELS
from miyabi_analytics.records import ExecutionStatus

__all__ = ["LOG_DTYPES", "SUMMARY_DTYPES", "empty_frame", "to_frame"]

UTC_TS: Final = pd.DatetimeTZDtype(unit="us", tz="UTC")
STR: Final = pd.StringDtype(na_value=np.nan)
AGENT_TYPE_DTYPE: Final = pd.CategoricalDtype(list(AGENT_TYPES))
CATEGORY_DTYPE: Final = pd.CategoricalDtype(list(AGENT_CATEGORIES))
STATUS_DTYPE: Final = pd.CategoricalDtype([s.value for s in ExecutionStatus])
LEVEL_DTYPE: Final = pd.CategoricalDtype(list(LOG_LEVELS))

SUMMARY_DTYPES: Final[Mapping[str, Any]] = {
    "id": STR,
    "repository_id": STR,
    "user_id": STR,
    "agent_type": AGENT_TYPE_DTYPE,
    "issue_number": "Int64",
    "status": STATUS_DTYPE,
    "started_at": UTC_TS,
    "completed_at": UTC_TS,
    "error_message": STR,
    "result": object,
    "quality_score": "Int64",
    "pr_number": "Int64",
    "created_at": UTC_TS,
    "updated_at": UTC_TS,
    "duration_seconds": "float64",
    "agent_category": CATEGORY_DTYPE,
    "competitors_analyzed": "Int64",
    "market_size_usd": "Int64",
    "growth_rate_percent": "float64",
    "conversion_rate": "float64",
    "target_audience_size": "Int64",
    "estimated_revenue_usd": "Int64",
    "engagement_score": "Int64",
    "reach_estimate": "Int64",
    "roi_percent": "float64",
}

LOG_DTYPES: Final[Mapping[str, Any]] = {
    "id": STR,
    "execution_id": STR,
    "log_level": LEVEL_DTYPE,
    "message": STR,
    "metadata": object,
    "logged_at": UTC_TS,
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

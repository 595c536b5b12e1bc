"""What every aggregate shares: the ``by`` keys, their SQL, the fetch, the typed frame."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import pandas as pd
from sqlalchemy import ColumnElement, Connection, Engine, Select

from miyabi_analytics._db.buckets import Freq, check_freq
from miyabi_analytics._db.schema import executions
from miyabi_analytics._db.summary import agent_category_of
from miyabi_analytics._db.tx import begin
from miyabi_analytics.errors import ValidationError
from miyabi_analytics.frames import SUMMARY_DTYPES, UTC_TS, to_frame

__all__ = [
    "BY_COLUMNS",
    "ByArg",
    "check_by",
    "check_optional_freq",
    "fetch",
    "frame",
    "key_expressions",
    "key_names",
    "spec",
]

BY_COLUMNS: Final[Mapping[str, Any]] = {
    name: SUMMARY_DTYPES[name]
    for name in ("agent_type", "agent_category", "repository_id", "user_id")
}
"""The columns an aggregate can group by, with their dtypes (read_summary's)."""

_KEY_EXPRESSIONS: Final[Mapping[str, ColumnElement[Any]]] = {
    "agent_type": executions.c.agent_type,
    "agent_category": agent_category_of(executions.c.agent_type),
    "repository_id": executions.c.repository_id,
    "user_id": executions.c.user_id,
}

ByArg = str | Sequence[str] | None


def check_by(by: object) -> tuple[str, ...]:
    """The ``by`` names as a tuple; :class:`ValidationError` for unknown or repeated ones."""
    names: list[object]
    if by is None:
        names = []
    elif isinstance(by, str):
        names = [by]
    elif isinstance(by, Iterable):
        names = list(by)
    else:
        names = [by]
    bad = [n for n in names if not isinstance(n, str) or n not in BY_COLUMNS]
    if bad:
        raise ValidationError("by", by, f"expected names from {', '.join(BY_COLUMNS)}")
    if len(set(names)) != len(names):
        raise ValidationError("by", by, "a column is named twice")
    return tuple(str(n) for n in names)


def check_optional_freq(freq: object) -> Freq | None:
    """``None``, or a valid ``freq`` (see :func:`~miyabi_analytics._db.buckets.check_freq`)."""
    return None if freq is None else check_freq(freq)


def key_expressions(by: tuple[str, ...]) -> list[ColumnElement[Any]]:
    """The SQL expression of each ``by`` name, on ``agent_executions``."""
    return [_KEY_EXPRESSIONS[name] for name in by]


def key_names(by: tuple[str, ...], freq: Freq | None) -> list[str]:
    """``["period", *by]`` with a ``freq``, else ``list(by)``: the frame's key columns."""
    return (["period"] if freq is not None else []) + list(by)


def spec(by: tuple[str, ...], freq: Freq | None, measures: Mapping[str, Any]) -> dict[str, Any]:
    """The frame's dtypes: keys first, then ``measures``."""
    out: dict[str, Any] = {"period": UTC_TS} if freq is not None else {}
    out.update((name, BY_COLUMNS[name]) for name in by)
    out.update(measures)
    return out


def fetch(bind: Engine | Connection, stmt: Select[Any]) -> Sequence[Any]:
    """All rows of ``stmt``, in a transaction of their own (or a savepoint of the caller's)."""
    with begin(bind, jit=False) as conn:
        return conn.execute(stmt).all()


def frame(
    rows: Sequence[Sequence[Any]], dtypes: Mapping[str, Any], order: list[str]
) -> pd.DataFrame:
    """``to_frame`` with non-null ``int64`` counts, sorted by ``order``."""
    counts = [name for name, dtype in dtypes.items() if dtype == "int64"]
    out = to_frame(rows, {k: "Int64" if k in counts else v for k, v in dtypes.items()})
    out = out.astype(dict.fromkeys(counts, "int64"))
    if order and len(out) > 1:
        out = out.sort_values(order, kind="stable", na_position="last", ignore_index=True)
    return out

"""Business metrics: which keys have typed columns, and the range each column can hold."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

from miyabi_analytics._validate import as_int, as_json
from miyabi_analytics.errors import ValidationError
from miyabi_analytics.vocabulary import (
    LOG_LEVELS,
    METRIC_COLUMNS,
    IntColumn,
    RateColumn,
    check_log_level,
)

__all__ = ["LOG_LEVELS", "METRIC_COLUMNS", "ValidMetrics", "check_log_level", "validate_metrics"]

_CENT: Final = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class ValidMetrics:
    """The whole metrics document (kept as JSON) and the values of the typed columns."""

    document: dict[str, Any]
    columns: dict[str, int | float | None]


def validate_metrics(metrics: object) -> ValidMetrics:
    """Check a metrics mapping; raises ValidationError naming ``metrics.<key>`` and the value."""
    if not isinstance(metrics, Mapping):
        raise ValidationError("metrics", metrics, "expected a mapping")
    columns: dict[str, int | float | None] = dict.fromkeys(METRIC_COLUMNS)
    for name, spec in METRIC_COLUMNS.items():
        value = metrics.get(name)
        if value is None:
            continue
        field = f"metrics.{name}"
        if isinstance(spec, IntColumn):
            columns[name] = as_int(field, value, low=spec.low, high=spec.high)
        else:
            columns[name] = _rate(field, value, spec)
    return ValidMetrics(document=as_json("metrics", metrics), columns=columns)


def _rate(field: str, value: object, spec: RateColumn) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValidationError(field, value, "expected a number")
    real = float(value)
    if not math.isfinite(real):
        raise ValidationError(field, value, "NaN and Infinity cannot be stored")
    bounds = f"must be between -{spec.bound} and {spec.bound} (numeric({spec.precision},2))"
    out_of_range = ValidationError(field, value, bounds)
    if abs(real) > spec.bound + 1:  # also keeps quantize within the decimal context's digits
        raise out_of_range
    # Round half away from zero to cents, as PostgreSQL's numeric does, so both databases agree.
    cents = Decimal(repr(real)).quantize(_CENT, rounding=ROUND_HALF_UP)
    if abs(cents) > spec.bound:
        raise out_of_range
    return float(cents)

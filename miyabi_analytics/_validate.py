"""Shared input checks: each returns the clean value or raises ValidationError naming the field."""

from __future__ import annotations

import math
import numbers
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from typing import Any

from miyabi_analytics.errors import ValidationError

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
JSON_MAX_DEPTH = 64


def as_uuid(field: str, value: object) -> uuid.UUID:
    """Accept a UUID or its text form; anything else is refused."""
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise ValidationError(field, value, "expected a UUID")


def as_int(field: str, value: object, *, low: int, high: int) -> int:
    """Integers only (numpy ints welcome, bools and integral floats not: they hide mistakes)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValidationError(field, value, "expected an integer")
    number = int(value)
    if not low <= number <= high:
        raise ValidationError(field, value, f"must be between {low} and {high}")
    return number


def as_aware(field: str, value: object) -> datetime:
    """Timezone-aware datetimes, normalised to UTC; naive ones are ambiguous and refused."""
    if not isinstance(value, datetime):
        raise ValidationError(field, value, "expected a timezone-aware datetime")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValidationError(field, value, "naive datetime: attach a timezone (e.g. UTC)")
    try:
        converted = value.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise ValidationError(field, value, "out of the supported range") from exc
    if hasattr(converted, "to_pydatetime"):  # pandas.Timestamp: drop nanoseconds explicitly
        converted = converted.to_pydatetime(warn=False)
    return datetime.combine(converted.date(), converted.timetz())


def as_time_bound(field: str, value: object) -> datetime:
    """Filter bounds: aware datetimes, dates (UTC midnight) or ISO strings of either."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValidationError(field, value, "expected an ISO date or datetime") from exc
        if value.tzinfo is None and value.time() == time(0):
            value = value.replace(tzinfo=UTC)
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time(0), tzinfo=UTC)
    return as_aware(field, value)


def as_text(field: str, value: object, *, max_length: int | None = None) -> str:
    """Text that every database can store (no NUL characters)."""
    if not isinstance(value, str):
        raise ValidationError(field, value, "expected a string")
    if "\x00" in value:
        raise ValidationError(field, value, "NUL characters cannot be stored")
    if max_length is not None and len(value) > max_length:
        raise ValidationError(field, value, f"longer than {max_length} characters")
    return value


def as_json(field: str, value: object) -> Any:
    """A deep copy made of plain dicts, lists, str, int, float, bool and None.

    NaN and Infinity are refused (JSON has no spelling for them and jsonb rejects them), as are
    non-string keys (they would come back as strings) and NUL characters (jsonb rejects them).
    """
    return _json_value(field, value, 0)


def _json_value(path: str, value: object, depth: int) -> Any:
    if depth > JSON_MAX_DEPTH:
        raise ValidationError(path, "...", f"nested deeper than {JSON_MAX_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return as_text(path, value)
    if isinstance(value, numbers.Integral):
        number = int(value)
        if not -INT64_MAX - 1 <= number <= INT64_MAX:
            raise ValidationError(path, value, "integer outside the 64-bit range")
        return number
    if isinstance(value, numbers.Real):
        real = float(value)
        if not math.isfinite(real):
            raise ValidationError(path, value, "NaN and Infinity are not valid JSON")
        return real
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(path, key, "JSON object keys must be strings")
            out[as_text(path, key)] = _json_value(f"{path}.{key}", item, depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_json_value(f"{path}[{i}]", item, depth + 1) for i, item in enumerate(value)]
    raise ValidationError(path, value, f"{type(value).__name__} is not JSON-serialisable")

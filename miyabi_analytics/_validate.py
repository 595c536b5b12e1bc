"""Shared input checks: each returns the clean value or raises ValidationError naming the field."""

from __future__ import annotations

import math
import numbers
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from miyabi_analytics.errors import ValidationError

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
JSON_MAX_DEPTH = 64


def as_uuid(field: str, value: object) -> uuid.UUID:
    """Accept a UUID or its text form; anything else is refused."""
    if type(value) is uuid.UUID or isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise ValidationError(field, value, "expected a UUID")


def as_int(field: str, value: object, *, low: int, high: int) -> int:
    """Integers only (numpy ints welcome, bools and integral floats not: they hide mistakes)."""
    if type(value) is int and low <= value <= high:
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValidationError(field, value, "expected an integer")
    number = int(value)
    if not low <= number <= high:
        raise ValidationError(field, value, f"must be between {low} and {high}")
    return number


def as_aware(field: str, value: object) -> datetime:
    """Timezone-aware datetimes, normalised to UTC; naive ones are ambiguous and refused."""
    if type(value) is datetime and value.tzinfo is UTC:
        return value  # already normalised: the common case in bulk writes
    if not isinstance(value, datetime):
        raise ValidationError(field, value, "expected a timezone-aware datetime")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValidationError(field, value, "naive datetime: attach a timezone (e.g. UTC)")
    try:
        converted = value.astimezone(UTC)
        if hasattr(converted, "to_pydatetime"):  # pandas.Timestamp: drop nanoseconds explicitly
            converted = converted.to_pydatetime(warn=False)
    except (OverflowError, ValueError) as exc:
        raise ValidationError(
            field, value, "out of the supported range (years 1 to 9999 in UTC)"
        ) from exc
    return datetime.combine(converted.date(), converted.timetz())


def as_time_bound(field: str, value: object) -> datetime:
    """Filter bounds: aware datetimes, dates (UTC midnight) or ISO strings of either."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValidationError(field, value, "expected an ISO date or datetime") from exc
        if parsed.tzinfo is None and parsed.time() == time(0):
            parsed = parsed.replace(tzinfo=UTC)
        try:
            return as_aware(field, parsed)
        except ValidationError as exc:  # named by the text given, not by its parsed form
            raise ValidationError(field, value, exc.reason) from None
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time(0), tzinfo=UTC)
    return as_aware(field, value)


PREVIOUS_PERIOD_EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
"""Where a report's previous period may start at the earliest (see :func:`as_window`)."""


def as_window(
    since: object, until: object, *, previous_period: bool = False
) -> tuple[datetime | None, datetime | None]:
    """The half-open window ``[since, until)`` of every reader, aggregate and report, in UTC.

    The one check of a time window, so each refuses the same windows with the same message.
    Each bound is what :func:`as_time_bound` accepts: any instant Python can hold once in UTC
    (years 1 to 9999), as stored timestamps may be (a bound further out cannot be converted
    and is refused naming it). ``None`` leaves that side open. With both given, ``since``
    must be before ``until``: an empty or inverted window is a mistake, not a question whose
    answer is nothing.

    ``previous_period=True`` (the report, which compares the window with the period of equal
    length just before it) needs both bounds, and that period must start on or after
    :data:`PREVIOUS_PERIOD_EARLIEST` (1970-01-01): computing it further back would overflow
    Python's dates for early windows, and no agent ran before then; so ``since`` must lie at
    least half-way from 1970-01-01 to ``until``.
    """
    start = None if since is None else as_time_bound("since", since)
    end = None if until is None else as_time_bound("until", until)
    if start is not None and end is not None and start >= end:
        raise ValidationError(
            "until",
            until,
            f"must be after since={start.isoformat()} (the window [since, until) is empty)",
        )
    if previous_period:
        if start is None or end is None:
            raise ValidationError(
                "since" if start is None else "until", None, "a report needs both bounds"
            )
        if start - PREVIOUS_PERIOD_EARLIEST < end - start:
            earliest = PREVIOUS_PERIOD_EARLIEST + _half_up(end - PREVIOUS_PERIOD_EARLIEST)
            raise ValidationError(
                "since",
                since,
                f"the previous period of equal length would start before "
                f"{PREVIOUS_PERIOD_EARLIEST:%Y-%m-%d}; with until={end.isoformat()}, since "
                f"must be on or after {earliest.isoformat()}",
            )
    return start, end


def _half_up(span: timedelta) -> timedelta:
    """Half of ``span``, rounded up to the microsecond."""
    return -((-span) // 2)


def as_text(field: str, value: object, *, max_length: int | None = None) -> str:
    """Text that every database can store (no NUL characters)."""
    if not isinstance(value, str):
        raise ValidationError(field, value, "expected a string")
    if "\x00" in value:
        raise ValidationError(field, value, "NUL characters cannot be stored")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: neither database can store them
            raise ValidationError(field, value, "not valid Unicode (lone surrogate)") from None
    if max_length is not None and len(value) > max_length:
        raise ValidationError(field, value, f"longer than {max_length} characters")
    return value


def as_json(field: str, value: object, *, copy: bool = True) -> Any:
    """The value as plain dicts, lists, str, int, float, bool and None.

    NaN and Infinity are refused (JSON has no spelling for them and jsonb rejects them), as are
    non-string keys (they would come back as strings) and NUL characters (jsonb rejects them).
    ``copy=True`` returns a deep copy (records must not share the caller's dicts); with
    ``copy=False`` a document that is already plain comes back as the same object.
    """
    return _json_value(field, value, 0, copy)


def _json_value(path: str, value: object, depth: int, copy: bool) -> Any:
    kind = type(value)
    if kind is str:
        if "\x00" in value or not value.isascii():  # type: ignore[attr-defined,operator]
            return as_text(path, value)
        return value
    if kind is int or kind is bool or value is None:
        if kind is int and not -INT64_MAX - 1 <= value <= INT64_MAX:  # type: ignore[operator]
            raise ValidationError(path, value, "integer outside the 64-bit range")
        return value
    if kind is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise ValidationError(path, value, "NaN and Infinity are not valid JSON")
        return value
    if depth > JSON_MAX_DEPTH:
        raise ValidationError(path, "...", f"nested deeper than {JSON_MAX_DEPTH} levels")
    if kind is dict and not copy:
        mapping: dict[Any, Any] = value  # type: ignore[assignment]
        changed = False
        for key, item in mapping.items():
            if type(key) is not str or "\x00" in key or not key.isascii():
                changed = True  # the slow path checks the key
                break
            if _json_value(f"{path}.{key}", item, depth + 1, copy) is not item:
                changed = True
                break
        if not changed:
            return value
    if kind is list and not copy:
        items: list[Any] = value  # type: ignore[assignment]
        if all(
            _json_value(f"{path}[{i}]", item, depth + 1, copy) is item
            for i, item in enumerate(items)
        ):
            return value
    return _json_convert(path, value, depth, copy)


def _json_convert(path: str, value: object, depth: int, copy: bool) -> Any:
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
            out[as_text(path, key)] = _json_value(f"{path}.{key}", item, depth + 1, copy)
        return out
    if isinstance(value, list | tuple):
        return [
            _json_value(f"{path}[{i}]", item, depth + 1, copy) for i, item in enumerate(value)
        ]
    raise ValidationError(path, value, f"{type(value).__name__} is not JSON-serialisable")

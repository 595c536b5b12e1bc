"""Shared input checks: each returns the clean value or raises ValidationError naming the field."""

from __future__ import annotations

import math
import numbers
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from miyabi_analytics.errors import ValidationError
from miyabi_analytics.vocabulary import INT32_MAX as INT32_MAX
from miyabi_analytics.vocabulary import INT64_MAX as INT64_MAX

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
    non-string keys (they would come back as strings), NUL characters (jsonb rejects them),
    integers outside the signed 64-bit range (SQLite's JSON functions and the readers' parser
    keep integers exact only within it: beyond, one would read back as a float), nesting deeper
    than :data:`JSON_MAX_DEPTH` levels and reference cycles (a dict or list that contains
    itself), each as a :class:`ValidationError` naming the path (``result.a[1].b``).
    ``copy=True`` returns a deep copy (records must not share the caller's dicts); with
    ``copy=False`` a document that is already plain comes back as the same object.
    """
    if not copy and is_plain_json(value):
        return value
    return _json_copy(field, value, 0, set())


def is_plain_json(value: object, depth: int = 0) -> bool:
    """Whether ``value`` is already what :func:`as_json` returns (a cheap check, no copy).

    The store runs it on every document right before writing, so a document changed in place
    after validation is caught; a cycle shows as nesting past the depth limit. The common
    scalars are checked inline, without a call each: this runs for every record of a bulk write.
    """
    kind = type(value)
    if kind is dict:
        if depth > JSON_MAX_DEPTH:
            return False
        mapping: dict[Any, Any] = value  # type: ignore[assignment]
        for key, item in mapping.items():
            if type(key) is not str:
                return False
            if not (key.isascii() and "\x00" not in key) and not _storable_text(key):
                return False
            item_kind = type(item)
            if item_kind is str:
                if not (item.isascii() and "\x00" not in item) and not _storable_text(item):
                    return False
            elif item_kind is int:
                if not -INT64_MAX - 1 <= item <= INT64_MAX:
                    return False
            elif item is not None and item_kind is not bool and not is_plain_json(
                item, depth + 1
            ):
                return False
        return True
    if kind is list:
        if depth > JSON_MAX_DEPTH:
            return False
        items: list[Any] = value  # type: ignore[assignment]
        return all(is_plain_json(item, depth + 1) for item in items)
    if kind is str:
        text: str = value  # type: ignore[assignment]
        return (text.isascii() and "\x00" not in text) or _storable_text(text)
    if kind is int:
        return -INT64_MAX - 1 <= value <= INT64_MAX  # type: ignore[operator]
    if kind is float:
        return math.isfinite(value)  # type: ignore[arg-type]
    return value is None or kind is bool


def _storable_text(value: str) -> bool:
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _json_copy(path: str, value: object, depth: int, open_containers: set[int]) -> Any:
    """A plain copy of ``value``; ``open_containers``: ids of the dicts/lists enclosing it."""
    kind = type(value)
    if kind is str:
        return as_text(path, value)
    if value is None or isinstance(value, bool):
        return value
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
    if isinstance(value, str):
        return as_text(path, str(value))
    if not isinstance(value, Mapping | list | tuple):
        raise ValidationError(path, value, f"{type(value).__name__} is not JSON-serialisable")
    marker = id(value)
    if marker in open_containers:
        raise ValidationError(path, "...", "contains itself (a reference cycle): not JSON")
    if depth > JSON_MAX_DEPTH:
        raise ValidationError(path, "...", f"nested deeper than {JSON_MAX_DEPTH} levels")
    open_containers.add(marker)
    try:
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    raise ValidationError(path, key, "JSON object keys must be strings")
                out[as_text(path, key)] = _json_copy(
                    f"{path}.{key}", item, depth + 1, open_containers
                )
            return out
        return [
            _json_copy(f"{path}[{i}]", item, depth + 1, open_containers)
            for i, item in enumerate(value)
        ]
    finally:
        open_containers.discard(marker)

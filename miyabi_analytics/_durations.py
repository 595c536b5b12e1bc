"""Durations as people type them on a command line: ``90s``, ``30m``, ``2h``, ``7d``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Final

from miyabi_analytics.errors import ValidationError

__all__ = ["MAX_DURATION", "as_duration", "format_duration", "parse_duration"]

# Long enough for any retention or heartbeat policy, short enough that ``now - duration``
# stays a valid timestamp on both databases.
MAX_DURATION: Final = timedelta(days=36_500)
_UNITS: Final = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
_PATTERN: Final = re.compile(r"(\d{1,12})([smhd])", re.ASCII)


def parse_duration(text: str, field: str = "duration") -> timedelta:
    """``<whole number><s|m|h|d>``, more than zero and at most 100 years; else ValidationError."""
    if not isinstance(text, str):
        raise ValidationError(field, text, "expected a duration such as 90s, 30m, 2h or 7d")
    match = _PATTERN.fullmatch(text.strip().lower())
    if match is None:
        raise ValidationError(field, text, "expected a duration such as 90s, 30m, 2h or 7d")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds == 0:
        raise ValidationError(field, text, "must be more than zero")
    if seconds > MAX_DURATION.total_seconds():
        raise ValidationError(field, text, "must be at most 100 years (36500d)")
    return as_duration(field, timedelta(seconds=seconds))


def as_duration(field: str, value: object) -> timedelta:
    """A positive ``timedelta`` of at most 100 years, or its text (see :func:`parse_duration`)."""
    if isinstance(value, str):
        return parse_duration(value, field)
    if not isinstance(value, timedelta):
        raise ValidationError(field, value, "expected a timedelta or a duration such as 30m")
    if value <= timedelta(0):
        raise ValidationError(field, value, "must be more than zero")
    if value > MAX_DURATION:
        raise ValidationError(field, value, "must be at most 100 years (36500d)")
    return value


def format_duration(value: timedelta) -> str:
    """The largest whole unit that fits exactly: ``timedelta(minutes=30)`` -> ``"30m"``."""
    micros = value // timedelta(microseconds=1)
    for unit in ("d", "h", "m", "s"):
        step = _UNITS[unit] * 1_000_000
        if micros % step == 0:
            return f"{micros // step}{unit}"
    return f"{value.total_seconds():g}s"

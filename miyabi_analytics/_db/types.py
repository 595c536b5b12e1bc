"""Column types that behave the same on PostgreSQL and SQLite.

SQLite has no timestamp or uuid type. Timestamps are stored there as fixed-width UTC text
(``YYYY-MM-DD HH:MM:SS.ffffff+00:00``) so they keep microseconds, sort as text, and SQLite's date
functions still read them; uuids as their canonical 36-character text.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, String, Uuid
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine.interfaces import Dialect as SQLDialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from miyabi_analytics._db.dialect import Dialect

SQLITE_TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f+00:00"
SQLITE_TS_WIDTH = 32


class UtcDateTime(TypeDecorator[datetime]):
    """``timestamptz`` on PostgreSQL, fixed-width UTC text on SQLite; always aware UTC in Python."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: SQLDialect) -> TypeEngine[Any]:
        if dialect.name == Dialect.SQLITE:
            return dialect.type_descriptor(String(SQLITE_TS_WIDTH))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: SQLDialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime reached the database layer")
        utc = value.astimezone(UTC)
        if dialect.name != Dialect.SQLITE:
            return utc
        # isoformat, not strftime: %Y does not zero-pad years before 1000 on every platform.
        return utc.isoformat(sep=" ", timespec="microseconds")

    def process_result_value(self, value: Any, dialect: SQLDialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return datetime.fromisoformat(value).astimezone(UTC)
        assert isinstance(value, datetime)
        return value.astimezone(UTC)


class UuidText(TypeDecorator[uuid.UUID]):
    """Native ``uuid`` on PostgreSQL, canonical 36-character text on SQLite."""

    impl = Uuid(as_uuid=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: SQLDialect) -> TypeEngine[Any]:
        if dialect.name == Dialect.SQLITE:
            return dialect.type_descriptor(String(36))
        return dialect.type_descriptor(Uuid(as_uuid=True))

    def process_bind_param(self, value: uuid.UUID | str | None, dialect: SQLDialect) -> Any:
        if value is None:
            return None
        parsed = value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
        return str(parsed) if dialect.name == Dialect.SQLITE else parsed

    def process_result_value(self, value: Any, dialect: SQLDialect) -> uuid.UUID | None:
        if value is None or isinstance(value, uuid.UUID):
            return value
        return uuid.UUID(str(value))


_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def strict_json_dumps(value: Any) -> str:
    """The engines' JSON serializer: NaN/Infinity are errors, never silently written."""
    text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    # jsonb refuses NUL (escaped as \u0000 by json.dumps); SQLite would keep it: refuse it on
    # both. An escaped backslash followed by "u0000" is text, not NUL: hence the regex.
    if "\\u0000" in text and _ESCAPED_NUL.search(text):
        raise ValueError("NUL characters cannot be stored in JSON")
    return text


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _json_int(text: str) -> int | float:
    """An integer of a stored document; one beyond 64 bits was saved as a float.

    Validation refuses integers outside the 64-bit range, but ``jsonb`` prints a float such as
    ``1e23`` as ``100000000000000000000000``: reading that as an int would change its type and,
    above 2**53, its value.
    """
    value = int(text)
    return value if _INT64_MIN <= value <= _INT64_MAX else float(text)


def json_loads(text: str | bytes) -> Any:
    """The engines' JSON deserializer: :func:`json.loads` with :func:`_json_int`."""
    return json.loads(text, parse_int=_json_int)


LONG_INTEGER_PATTERN = r"[0-9]{19}"
"""Matches the text of every document that may hold an integer beyond 64 bits (19+ digits)."""


JsonDocument = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), Dialect.POSTGRESQL)

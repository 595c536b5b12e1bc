"""Column defaults the database gives every writer: ids, timestamps, an empty metrics document.

A row inserted by any writer (this package, the Rust agents that share a Miyabi database, psql)
that names only some columns gets what the store would have given it:

=========================  ===========================  ===========================================
column                     PostgreSQL                   SQLite
=========================  ===========================  ===========================================
``id`` (3 tables)          ``gen_random_uuid()``        a random uuid4 as its canonical 36-char text
``created_at``,            ``now()`` (transaction       the current time as the fixed-width UTC text
``updated_at``,            start, as upstream's         of :mod:`~miyabi_analytics._db.types`
``logged_at``              ``DEFAULT NOW()``)           (SQLite's clock has milliseconds: ``000``
                                                        pads them to the microsecond width)
``metrics``                ``'{}'::jsonb``              ``'{}'``
=========================  ===========================  ===========================================

The store still sends every value itself; the defaults are for the writers that do not.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.types import SQLITE_TS_WIDTH

__all__ = ["DEFAULTS", "Default", "now_sql", "uuid_sql"]

# 'now' with milliseconds ("YYYY-MM-DD HH:MM:SS.SSS"), padded to SQLITE_TS_FORMAT's width.
_SQLITE_NOW: Final = "strftime('%Y-%m-%d %H:%M:%f', 'now') || '000+00:00'"
assert len("2026-01-01 00:00:00.000" + "000+00:00") == SQLITE_TS_WIDTH

# xxxxxxxx-xxxx-4xxx-Yxxx-xxxxxxxxxxxx, Y one of 8 9 a b (RFC 4122 version 4, variant 1).
_SQLITE_UUID4: Final = (
    "lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || "
    "substr(lower(hex(randomblob(2))), 2) || '-' || "
    "substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || "
    "'-' || lower(hex(randomblob(6)))"
)


def now_sql(dialect: Dialect) -> str:
    """An SQL expression for the current time, in the form the dialect stores timestamps."""
    return "now()" if dialect.is_postgresql else f"({_SQLITE_NOW})"


def uuid_sql(dialect: Dialect) -> str:
    """An SQL expression for a new random uuid (version 4), as the dialect stores uuids."""
    return "gen_random_uuid()" if dialect.is_postgresql else f"({_SQLITE_UUID4})"


class Default(NamedTuple):
    """One column's default: ``kind`` is ``"uuid"``, ``"now"`` or ``"empty_json"``."""

    table: str
    column: str
    kind: str

    def sql(self, dialect: Dialect) -> str:
        """The default's expression in ``dialect`` (SQLite's in parentheses, as it wants them)."""
        if self.kind == "uuid":
            return uuid_sql(dialect)
        if self.kind == "now":
            return now_sql(dialect)
        assert self.kind == "empty_json", self.kind
        return "'{}'::jsonb" if dialect.is_postgresql else "('{}')"


DEFAULTS: Final[tuple[Default, ...]] = (
    Default("agent_executions", "id", "uuid"),
    Default("agent_executions", "created_at", "now"),
    Default("agent_executions", "updated_at", "now"),
    Default("business_agent_analytics", "id", "uuid"),
    Default("business_agent_analytics", "metrics", "empty_json"),
    Default("business_agent_analytics", "created_at", "now"),
    Default("agent_execution_logs", "id", "uuid"),
    Default("agent_execution_logs", "logged_at", "now"),
)
"""Every default the database holds (revision 0008_database_rules)."""

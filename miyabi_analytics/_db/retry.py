"""The package's one retry policy: which database errors a retry can cure, and how to retry.

:func:`classify` sorts every error into one :class:`Failure`, from well-defined codes rather than
message text: PostgreSQL's SQLSTATE (psycopg's ``sqlstate``), SQLite's result code
(``sqlite_errorcode``) and SQLAlchemy's ``connection_invalidated`` (the driver found the
connection dead under a statement).

``TRANSIENT``, retried by :func:`~miyabi_analytics._db.tx.write`: a connection lost mid-
transaction (server restart, ``pg_terminate_backend``, network), a serialization failure (40001),
a deadlock (40P01), the server shutting down or starting up (57P01-57P03), a connection failure
reported as SQLSTATE 08000/08003/08006/08007, SQLite's ``SQLITE_BUSY`` / ``SQLITE_LOCKED``
("database is locked").

``CONFLICT``: a unique violation (23505). Not worth retrying as such, but a read-then-write batch
that lost a race to a concurrent insert of the same id gets it right when run again (the store's
bulk path asks ``write`` for that, a bounded number of times).

``PERMANENT``, raised at once, everything else: a connection that could not be opened (bad URL,
unknown host, refused connection, authentication failure, database does not exist: psycopg gives
these no SQLSTATE, and a few hundred milliseconds fix none of them), undefined table (42P01) or
column (42703), syntax errors (42601), permission denied (42501), integrity and check violations
(the lifecycle guard's 23M01 among them: the move is refused whatever the timing), bad data,
SQLite's "unable to open database file" or "no such table", our own errors.

A retry is only sound when the whole transaction is ours: ``write`` retries with an ``Engine``,
never inside a transaction a caller opened on a ``Connection`` (that transaction is already lost).
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass
from enum import Enum
from typing import Final

from sqlalchemy.exc import DBAPIError

__all__ = [
    "DEFAULT_RETRY",
    "NO_RETRY",
    "Failure",
    "RetryPolicy",
    "classify",
    "is_transient",
    "sqlstate",
]

_TRANSIENT_SQLSTATES: Final = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "57P01",  # admin_shutdown (pg_terminate_backend, fast shutdown)
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (server starting up)
        "08000",  # connection_exception
        "08003",  # connection_does_not_exist
        "08006",  # connection_failure
        "08007",  # transaction_resolution_unknown (our writes are idempotent on retry)
    }
)
_UNIQUE_VIOLATION: Final = "23505"
_SQLITE_BUSY: Final = 5  # primary result codes: the low byte of an extended one
_SQLITE_LOCKED: Final = 6


class Failure(Enum):
    """What a retry of the failed transaction can achieve (see the module docstring)."""

    TRANSIENT = "transient"
    CONFLICT = "conflict"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry: ``attempts`` in all, backoff doubling, jittered."""

    attempts: int = 5
    base_delay: float = 0.05
    max_delay: float = 2.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return float(ceiling * random.uniform(0.5, 1.0))


DEFAULT_RETRY: Final = RetryPolicy()
NO_RETRY: Final = RetryPolicy(attempts=1)


def sqlstate(error: BaseException | None) -> str | None:
    """The driver error's SQLSTATE (psycopg), or ``None`` (SQLite, or no code at all)."""
    state = getattr(error, "sqlstate", None)
    return state if isinstance(state, str) else None


def classify(exc: BaseException) -> Failure:
    """The one classification of a failed database call that every retry in the package uses.

    ``exc`` is what SQLAlchemy raised (a ``DBAPIError``) or a driver's own exception; anything
    that is not a database error is ``PERMANENT``.
    """
    orig: BaseException | None = exc
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return Failure.TRANSIENT  # the connection died under an open transaction
        orig = exc.orig
    state = sqlstate(orig)
    if state is not None:
        if state in _TRANSIENT_SQLSTATES:
            return Failure.TRANSIENT
        return Failure.CONFLICT if state == _UNIQUE_VIOLATION else Failure.PERMANENT
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return Failure.TRANSIENT
    return Failure.PERMANENT


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is worth retrying the whole transaction for (see :func:`classify`)."""
    return classify(exc) is Failure.TRANSIENT

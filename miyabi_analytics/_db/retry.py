"""Run a write again, with backoff, when the database failed it for a reason that passes.

Transient: the connection was lost (server restart, ``pg_terminate_backend``, network), a
serialization failure (40001) or deadlock (40P01), the server shutting down or starting up
(57P01-57P03), SQLite's "database is locked" / "busy". Everything else is permanent and raised at
once: integrity and check violations, bad data, programming errors, our own ``ValidationError``.

A retry is only sound when the whole transaction is ours: callers retry with an ``Engine``, never
inside a transaction a caller opened on a ``Connection`` (that transaction is already lost).
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar

import psycopg
from sqlalchemy.exc import DBAPIError

__all__ = ["DEFAULT_RETRY", "NO_RETRY", "RetryPolicy", "is_transient", "run_with_retries"]

T = TypeVar("T")
log = logging.getLogger("miyabi_analytics.retry")

_TRANSIENT_SQLSTATES: Final = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "57P01",  # admin_shutdown (pg_terminate_backend, fast shutdown)
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (server starting up)
    }
)
_SQLITE_BUSY: Final = ("database is locked", "database table is locked", "database is busy")


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


def _sqlstate(error: BaseException | None) -> str | None:
    state = getattr(error, "sqlstate", None)
    return state if isinstance(state, str) else None


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is worth retrying the whole transaction for (see the module docstring)."""
    orig: BaseException | None = exc
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        orig = exc.orig
    state = _sqlstate(orig)
    if state is not None:
        return state in _TRANSIENT_SQLSTATES or state.startswith("08")
    if isinstance(orig, sqlite3.OperationalError):
        text = str(orig).lower()
        return any(marker in text for marker in _SQLITE_BUSY)
    if isinstance(orig, psycopg.OperationalError) and isinstance(exc, DBAPIError):
        # No SQLSTATE: the socket went away. A connection that never opened is a bad URL or a
        # server that is down, which a few hundred milliseconds will not fix.
        return "connection failed" not in str(orig)
    return False


def run_with_retries(
    operation: Callable[[int], T],
    policy: RetryPolicy = DEFAULT_RETRY,
    *,
    what: str = "write",
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``operation(attempt)`` (attempt 1, 2, ...) until it returns or fails permanently.

    The last transient error is raised unchanged once ``policy.attempts`` are used up. Retries are
    logged at WARNING with the error's type and SQLSTATE only (never its text: it can carry data).
    """
    attempt = 1
    while True:
        try:
            return operation(attempt)
        except DBAPIError as exc:
            if attempt >= policy.attempts or not is_transient(exc):
                raise
            pause = policy.delay(attempt)
            log.warning(
                "retrying %s after transient %s (sqlstate %s), attempt %d of %d, in %.3fs",
                what,
                type(exc.orig).__name__,
                _sqlstate(exc.orig) or "-",
                attempt + 1,
                policy.attempts,
                pause,
            )
        sleep(pause)
        attempt += 1

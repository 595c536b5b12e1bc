"""Transaction scope in one place: ``begin`` for every read, ``write`` for every write.

:func:`write` is the package's one way to run a write transaction, and so the one place that
retries: every store method, the demo load and any other writer hand it their work. What is
worth a retry is :func:`~miyabi_analytics._db.retry.classify`'s answer; how often and how long
to wait is a :class:`~miyabi_analytics._db.retry.RetryPolicy`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from miyabi_analytics._db.retry import DEFAULT_RETRY, Failure, RetryPolicy, classify, sqlstate

__all__ = ["begin", "snapshot", "write"]

T = TypeVar("T")
log = logging.getLogger("miyabi_analytics.retry")


@contextmanager
def begin(
    bind: Engine | Connection, *, write: bool = False, jit: bool = True
) -> Iterator[Connection]:
    """One transaction on ``bind``; nested in a savepoint if the caller already opened one.

    ``write=True`` makes SQLite take its write lock at BEGIN (``BEGIN IMMEDIATE``), so a
    read-then-write never fails half-way with "database is locked"; it waits instead.
    ``jit=False`` turns PostgreSQL's JIT compilation off for a transaction of our own (never a
    caller's): the aggregates' plans join rollups to pending days, whose row estimates are
    guesses large enough to trigger JIT, which then spends 0.4 s compiling a 2 ms query.
    """
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            if write:
                conn = conn.execution_options(miyabi_write=True)
            with conn.begin():
                if not jit and conn.dialect.name == "postgresql":
                    conn.exec_driver_sql("SET LOCAL jit = off")
                yield conn
    elif bind.in_transaction():
        with bind.begin_nested():
            yield bind
    else:
        with bind.begin():
            yield bind


@contextmanager
def snapshot(bind: Engine | Connection, *, jit: bool = True) -> Iterator[Connection]:
    """A read transaction whose statements all see one snapshot (PostgreSQL: REPEATABLE READ).

    Read committed would let a write commit between two statements that must agree (an
    execution and its logs; a duration summary and its histogram). A caller's own connection
    keeps the caller's isolation; SQLite's read transaction holds one snapshot already.
    ``jit`` as for :func:`begin`.
    """
    if isinstance(bind, Engine) and bind.dialect.name == "postgresql":
        with bind.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                if not jit:
                    conn.exec_driver_sql("SET LOCAL jit = off")
                yield conn
        return
    with begin(bind, jit=jit) as conn:
        yield conn


def write(
    bind: Engine | Connection,
    work: Callable[[Connection], T],
    *,
    what: str,
    policy: RetryPolicy = DEFAULT_RETRY,
    conflicts: int = 0,
    errors: Callable[[], AbstractContextManager[object]] | None = None,
    recover: Callable[[Connection], T | None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``work(conn)`` in one write transaction on ``bind``, run again while a retry can cure it.

    A transient failure (:class:`~miyabi_analytics._db.retry.Failure`) is retried with
    ``policy``'s backoff, but only with an ``Engine``: on a ``Connection`` the transaction is
    the caller's, already lost with the error, so only the caller can run it again. A unique
    violation (a concurrent writer inserted a key first) is retried at once up to ``conflicts``
    times, on any bind: the attempt's own transaction or savepoint is rolled back cleanly, and a
    read-then-write that lost that race gets it right when run again. Anything else, and the
    last failure once the tries are used up, is raised unchanged. Each transient retry is
    logged at WARNING with the error's type and SQLSTATE only (its text can carry data).

    Args:
        bind: An engine (the transaction is ours) or a connection (it joins the caller's).
        work: The transaction's body; it may run more than once, so it must not keep state
            between attempts that a rolled-back attempt would leave wrong.
        what: Names the write in the retry log.
        policy: How many attempts in all, and the backoff between them.
        conflicts: How many times to run ``work`` again after a unique violation.
        errors: Entered around each attempt, outside its transaction (so that is rolled back
            first): turns a database error into the caller's own, which is never retried.
        recover: Run first in each retry's transaction: a result means the failed attempt did
            commit (only its acknowledgement was lost), and is returned instead of running
            ``work`` again.
        sleep: Waits between transient retries (tests pass a fake).
    """
    ours = isinstance(bind, Engine)
    transient = conflicted = 0
    while True:
        guard = errors() if errors is not None else nullcontext()
        try:
            with guard, begin(bind, write=True) as conn:
                if recover is not None and transient + conflicted:
                    done = recover(conn)
                    if done is not None:
                        return done
                return work(conn)
        except DBAPIError as exc:
            failure = classify(exc)
            if failure is Failure.CONFLICT and conflicted < conflicts:
                conflicted += 1
                continue
            if failure is not Failure.TRANSIENT or not ours or transient + 1 >= policy.attempts:
                raise
            transient += 1
            pause = policy.delay(transient)
            log.warning(
                "retrying %s after transient %s (sqlstate %s), attempt %d of %d, in %.3fs",
                what,
                type(exc.orig).__name__,
                sqlstate(exc.orig) or "-",
                transient + 1,
                policy.attempts,
                pause,
            )
            sleep(pause)

"""Transaction scope in one place: every store call and reader runs inside ``begin``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine


@contextmanager
def begin(bind: Engine | Connection, *, write: bool = False) -> Iterator[Connection]:
    """One transaction on ``bind``; nested in a savepoint if the caller already opened one.

    ``write=True`` makes SQLite take its write lock at BEGIN (``BEGIN IMMEDIATE``), so a
    read-then-write never fails half-way with "database is locked"; it waits instead.
    """
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            if write:
                conn = conn.execution_options(miyabi_write=True)
            with conn.begin():
                yield conn
    elif bind.in_transaction():
        with bind.begin_nested():
            yield bind
    else:
        with bind.begin():
            yield bind

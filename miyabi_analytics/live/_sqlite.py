"""Watching on SQLite: poll ``PRAGMA data_version``, then read the transitions past a cursor.

SQLite has no notifications. ``PRAGMA data_version`` on a connection changes when another
connection (of any process) commits to the file, and costs no read of the database, so the
watcher asks it every :data:`POLL_SECONDS` on a dedicated connection and reads the table only
when it changed. SQLite serialises writers, so transition ids (``AUTOINCREMENT``: never reused,
even after the newest rows are deleted) are handed out in commit order: ``id > cursor`` is
exactly what was committed since the last read, and a rolled-back write leaves nothing.
The cursor starts at the largest id when ``watch`` is called.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Generator
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import Engine

from miyabi_analytics._db.engine import SQLITE_BUSY_TIMEOUT_MS
from miyabi_analytics._db.schema import transitions
from miyabi_analytics.errors import ValidationError
from miyabi_analytics.live._event import TransitionEvent
from miyabi_analytics.live._rows import EventFilter, event_columns, to_event

__all__ = ["POLL_SECONDS", "SqliteSource"]

POLL_SECONDS: Final = 0.025
_LAST: Final = sa.select(sa.func.coalesce(sa.func.max(transitions.c.id), 0))


class SqliteSource:
    """One watcher's polling connection and its cursor."""

    def __init__(self, engine: Engine, wanted: EventFilter) -> None:
        database = engine.url.database
        if not database or database == ":memory:" or database.startswith("file::memory:"):
            raise ValidationError(
                "engine", engine.url.render_as_string(), "an in-memory SQLite database has no "
                "other writers to watch; use a database file"
            )
        self._dialect = engine.dialect
        self._wanted = wanted
        self._conn: sqlite3.Connection | None = sqlite3.connect(
            database, isolation_level=None, check_same_thread=False
        )
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            self._version = self._data_version()
            self._cursor = int(self._fetch(_LAST)[0][0])
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def events(self, timeout: float | None) -> Generator[TransitionEvent, None, None]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._conn is not None:
            version = self._data_version()
            if version != self._version:
                self._version = version
                for event in self._read():
                    yield event
                    deadline = None if timeout is None else time.monotonic() + timeout
                continue  # a commit may have come while yielding: ask again at once
            pause = POLL_SECONDS
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                pause = min(pause, left)
            time.sleep(pause)

    def _data_version(self) -> int:
        assert self._conn is not None
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def _fetch(self, stmt: sa.Select[Any]) -> list[Any]:
        assert self._conn is not None
        compiled = stmt.compile(dialect=self._dialect)
        params = [compiled.params[name] for name in compiled.positiontup or ()]
        return self._conn.execute(str(compiled), params).fetchall()

    def _read(self) -> list[TransitionEvent]:
        """The matching transitions committed since the cursor, in id (= commit) order."""
        stmt = event_columns().where(transitions.c.id > self._cursor).order_by(transitions.c.id)
        out = []
        for row in self._fetch(stmt):
            self._cursor = int(row[0])
            event = to_event(row)
            if self._wanted(event):
                out.append(event)
        return out
